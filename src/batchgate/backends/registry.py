"""Build backends from config.

Built-in backends register exactly like third-party ones: a factory under a
name. Third-party packages add theirs through the ``batchgate.backends`` entry
point group (``name = "package.module:create"``). Built-ins are imported lazily
so that, say, an OpenAI-only deployment never loads llama.cpp.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable

from batchgate import config
from batchgate.backends import base

BackendFactory = Callable[[config.ModelConfig], base.Backend]

_BUILTIN: dict[str, str] = {
    "llama_cpp": "batchgate.backends.llama_cpp:create",
    "openai_compatible": "batchgate.backends.openai_compatible:create",
    "anthropic": "batchgate.backends.anthropic:create",
}


def _load(target: str) -> BackendFactory:
    module_name, _, attr = target.partition(":")
    factory: BackendFactory = getattr(importlib.import_module(module_name), attr)
    return factory


def factory_for(backend_name: str) -> BackendFactory:
    if backend_name in _BUILTIN:
        return _load(_BUILTIN[backend_name])
    for entry in importlib.metadata.entry_points(group="batchgate.backends"):
        if entry.name == backend_name:
            loaded: BackendFactory = entry.load()
            return loaded
    known = sorted(_BUILTIN)
    raise ValueError(f"unknown backend {backend_name!r}; built-in backends: {', '.join(known)}")


def create(model: config.ModelConfig) -> base.Backend:
    return factory_for(model.backend)(model)
