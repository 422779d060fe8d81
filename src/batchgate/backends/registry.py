"""Build backends from config.

Built-in backends register exactly like third-party ones: a factory and a
capabilities hook under a name. Third-party packages add theirs through the
``batchgate.backends`` entry point group, naming an object (a module, a
class) with both::

    [project.entry-points."batchgate.backends"]
    my_backend = "my_package.backend"    # a module with create() and capabilities()

``create(model_config) -> Backend`` builds it; ``capabilities(model_config)
-> Capabilities`` says what it can serve from its settings alone, without
building it, so the API process checks requests at submit exactly as the
worker will at dispatch (backends/capability.py). An entry point naming a
bare factory (``"my_package.backend:create"``) still works, but then only
the worker, which builds the backend, can check its requests. Built-ins are
imported lazily so that, say, an OpenAI-only deployment never loads
llama.cpp.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from typing import Any

from batchgate import config
from batchgate.backends import base

BackendFactory = Callable[[config.ModelConfig], base.Backend]
CapabilitiesHook = Callable[[config.ModelConfig], base.Capabilities]

_BUILTIN: dict[str, str] = {
    "llama_cpp": "batchgate.backends.llama_cpp:create",
    "openai_compatible": "batchgate.backends.openai_compatible:create",
    "anthropic": "batchgate.backends.anthropic:create",
    "openai_batch": "batchgate.backends.provider_batch.backend:create_openai",
    "anthropic_batch": "batchgate.backends.provider_batch.backend:create_anthropic",
}

# What a built-in backend honours, read from its settings alone (no client,
# no model load): the API process checks requests against the same
# capabilities the worker's backends declare. The llama_cpp hook lives in
# its options module so that reading it does not import llama.cpp.
_BUILTIN_CAPABILITIES: dict[str, str] = {
    "llama_cpp": "batchgate.backends.llama_cpp.options:capabilities",
    "openai_compatible": "batchgate.backends.openai_compatible:capabilities",
    "anthropic": "batchgate.backends.anthropic:capabilities",
    "openai_batch": "batchgate.backends.provider_batch.options:openai_capabilities",
    "anthropic_batch": "batchgate.backends.provider_batch.options:anthropic_capabilities",
}


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _plugin(backend_name: str) -> Any | None:
    """What a third-party package's entry point of that name loads."""
    for entry in importlib.metadata.entry_points(group="batchgate.backends"):
        if entry.name == backend_name:
            return entry.load()
    return None


def factory_for(backend_name: str) -> BackendFactory:
    if backend_name in _BUILTIN:
        factory: BackendFactory = _load(_BUILTIN[backend_name])
        return factory
    plugin = _plugin(backend_name)
    if plugin is not None:
        # A plugin object's create(), or the entry point is the factory itself.
        created: BackendFactory = getattr(plugin, "create", plugin)
        return created
    known = sorted(_BUILTIN)
    raise ValueError(f"unknown backend {backend_name!r}; built-in backends: {', '.join(known)}")


def create(model: config.ModelConfig) -> base.Backend:
    return factory_for(model.backend)(model)


def capabilities(model: config.ModelConfig) -> base.Capabilities | None:
    """What ``model``'s backend declares, from its settings, without building
    it; None for a backend that declares nothing (a plugin whose entry point
    is a bare factory, or none installed): its capabilities are known only
    once it is built, in the worker."""
    if model.backend in _BUILTIN_CAPABILITIES:
        builtin: CapabilitiesHook = _load(_BUILTIN_CAPABILITIES[model.backend])
        return builtin(model)
    hook: object = getattr(_plugin(model.backend), "capabilities", None)
    if isinstance(hook, base.Capabilities):
        return hook  # a backend class whose capabilities are a class attribute
    if not callable(hook):
        return None
    declared = hook(model)
    if not isinstance(declared, base.Capabilities):
        raise TypeError(
            f"backend {model.backend!r}: capabilities() returned {type(declared).__name__}, "
            "not batchgate.backends.base.Capabilities"
        )
    return declared
