"""Run batchgate for tests.

``serve`` runs the app in this process (see :mod:`tests.inprocess`) on the
in-memory store, unless the settings name a database; ``serve_socket`` runs it
under uvicorn on a free 127.0.0.1 port, for tests about the socket itself.
Both yield a :class:`RunningServer`, whose clients reach the app either way.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import uvicorn

from batchgate import composition, config, testing
from batchgate.backends import base
from batchgate.domain import keys as key_model
from batchgate.domain.states import BatchStatus
from batchgate.services.keys import KeyService
from batchgate.store import port
from tests import inprocess

if TYPE_CHECKING:
    import anthropic
    import openai
    import pytest

API_KEY = "bg-test-key-0123456789abcdef"
# The model name tests route to the fake upstream.
FAKE_MODEL = "fake-chat"

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T], timeout: float = 30.0, what: str = "the condition", every: float = 0.01
) -> T:
    """Call ``probe`` until it returns something truthy, and return that;
    after ``timeout`` seconds fail, naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g}s for {what}; last saw {value!r}")
        time.sleep(every)


def advance_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move ``time.time()`` ``seconds`` ahead, in every thread of this process
    (the in-process server's routes and worker read it), until the test ends:
    an expiry comes due at once instead of after a real wait. ``time.monotonic``,
    which paces sleeps, polls and timeouts, is left alone; webhook signatures
    are dated by ``datetime``, so receivers still accept them."""
    earlier = time.time
    monkeypatch.setattr(time, "time", lambda: earlier() + seconds)


class RunningServer:
    """A running batchgate and the clients that reach it. ``base_url`` is what
    those clients use; ``url`` is a real loopback URL (in process, a listener
    opened on first use, for clients that cannot take a transport)."""

    def __init__(
        self,
        api_key: str,
        store: port.JobStore,
        settings: config.Settings,
        *,
        base_url: str,
        app: inprocess.InProcessApp | None = None,
    ) -> None:
        self.api_key = api_key
        self.store = store
        self.settings = settings
        self.base_url = base_url
        self._app = app
        # Kept once opened: a test may still compare URLs after the server stopped.
        self._socket_url: str | None = None

    @property
    def url(self) -> str:
        if self._app is not None and self._socket_url is None:
            self._socket_url = self._app.socket_url()
        return self._socket_url or self.base_url

    def http_client(self, http: ModuleType = httpx, **options: Any) -> Any:
        """A bare client that reaches the server (for an SDK's ``http_client``),
        of the ``http`` package (httpx, or httpx2 for newer SDKs)."""
        transport = None if self._app is None else self._app.transport(http)
        return http.Client(transport=transport, **{"timeout": 60, **options})

    def client(self, api_key: str | None = None, **headers: str) -> httpx.Client:
        return self.http_client(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {api_key or self.api_key}", **headers},
        )

    def openai(self, api_key: str | None = None, **options: Any) -> openai.OpenAI:
        import openai

        return openai.OpenAI(
            base_url=f"{self.base_url}/v1",
            api_key=api_key or self.api_key,
            http_client=self.http_client(inprocess.http_package_of(openai.DefaultHttpxClient)),
            **options,
        )

    def anthropic(self, api_key: str | None = None, **options: Any) -> anthropic.Anthropic:
        import anthropic

        return anthropic.Anthropic(
            base_url=self.base_url,
            api_key=api_key or self.api_key,
            http_client=self.http_client(inprocess.http_package_of(anthropic.DefaultHttpxClient)),
            **options,
        )

    def submit(self, model: str, texts: list[str], api_key: str | None = None) -> str:
        """A native batch with one request per text (custom_ids r0, r1, ...);
        returns its id."""
        requests = [
            {
                "custom_id": f"r{i}",
                "params": {
                    "model": model,
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": text}],
                },
            }
            for i, text in enumerate(texts)
        ]
        with self.client(api_key) as client:
            response = client.post("/v1/batches", json={"requests": requests})
        response.raise_for_status()
        batch_id: str = response.json()["id"]
        return batch_id

    def new_key(self, name: str = "other") -> str:
        _record, secret = KeyService(self.store).create(name)
        return secret

    def expired_key(self, secret: str = "bg-expired-key-0123456789") -> str:
        """An ordinary key whose expiry has passed (stored directly: the
        service refuses an expiry in the past)."""
        self.store.create_key(
            "expired",
            key_model.hash_key(secret),
            key_model.display_prefix(secret),
            time.time() - 120,
            expires_at=time.time() - 60,
        )
        return secret

    def wait_ended(
        self, batch_id: str, timeout: float = 60.0, api_key: str | None = None
    ) -> dict[str, Any]:
        with self.client(api_key, accept="application/json") as client:

            def ended() -> dict[str, Any] | None:
                batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
                return batch if BatchStatus(batch["status"]).is_ended else None

            # Every 50 ms: polling faster than the per-key rate limit
            # ([rate_limit] 50/s) gets 429s once the burst is spent.
            return wait_until(ended, timeout, f"batch {batch_id} to end", every=0.05)


def openai_model(name: str, base_url: str, **extra: Any) -> config.ModelConfig:
    return config.ModelConfig(name=name, backend="openai_compatible", base_url=base_url, **extra)


def openai_batch_model(name: str, base_url: str, **extra: Any) -> config.ModelConfig:
    """A model served through an OpenAI Files + Batches API (the fake
    upstream's, at its ``openai_base_url``)."""
    return config.ModelConfig(name=name, backend="openai_batch", base_url=base_url, **extra)


def dry_run_eta(client: httpx.Client, request: dict[str, Any]) -> dict[str, Any]:
    """The ETA a native dry run of one request (``{"custom_id", "params"}``)
    gives for its model."""
    body = {"requests": [request]}
    response = client.post("/v1/batches", params={"dry_run": "true"}, json=body)
    assert response.status_code == 200, response.text
    (model,) = response.json()["models"]
    eta: dict[str, Any] = model["eta"]
    return eta


def fake_model(name: str, **extra: Any) -> config.ModelConfig:
    """The config of a model whose backend a test passes to :func:`serve`
    (a ``testing.FakeBackend``). The API reads its options (capabilities,
    prices); its URL is a port nothing listens on, in case anything calls it."""
    return openai_model(name, "http://127.0.0.1:9/v1", **extra)


def make_settings(
    tmp_path: Path,
    models: dict[str, config.ModelConfig],
    database_url: str | None = None,
    **worker: Any,
) -> config.Settings:
    # A short drain: a call a test left hanging on the fake upstream would
    # otherwise hold the server's shutdown for the whole hang.
    timing = {
        "poll_seconds": 0.05,
        "sweep_seconds": 0.2,
        "backoff_base_seconds": 0.05,
        "drain_seconds": 0.1,
    }
    return config.Settings(
        data_dir=tmp_path,
        database_url=database_url,
        models=models,
        worker=config.WorkerSettings(**{**timing, **worker}),
    )


def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file for a test that needs the SQL store (migrations, files on disk)."""
    return f"sqlite:///{tmp_path / 'batchgate.db'}"


def _store_for(settings: config.Settings, api_key: str) -> port.JobStore:
    """The in-memory store, or the database the settings name."""
    store: port.JobStore = (
        testing.MemoryJobStore()
        if settings.database_url is None
        else composition.open_store(settings)
    )
    KeyService(store).register("test", api_key)
    return store


@contextlib.contextmanager
def serve(
    settings: config.Settings,
    api_key: str = API_KEY,
    with_worker: bool = True,
    store: port.JobStore | None = None,
    backends: Mapping[str, base.Backend] | None = None,
) -> Iterator[RunningServer]:
    """The app in this process with its worker; ``store`` instead of the
    in-memory one (then no key is registered: it may be one nothing can
    reach); ``backends`` (e.g. ``testing.FakeBackend``) take the place of the
    configured models' backends of the same name."""
    if store is None:
        store = _store_for(settings, api_key)
    app = composition.create_server_app(settings, store, with_worker=with_worker, backends=backends)
    try:
        with inprocess.running(app) as in_process:
            yield RunningServer(
                api_key, store, settings, base_url=inprocess.BASE_URL, app=in_process
            )
    finally:
        store.close()


@contextlib.contextmanager
def serve_socket(
    settings: config.Settings,
    api_key: str = API_KEY,
    with_worker: bool = True,
    store: port.JobStore | None = None,
) -> Iterator[RunningServer]:
    """The API under uvicorn on a free loopback port, on the settings' own
    database (SQLite in ``data_dir`` unless it names one)."""
    if store is None:
        store = composition.open_store(settings)
        KeyService(store).register("test", api_key)
    app = composition.create_server_app(settings, store, with_worker=with_worker)
    server = uvicorn.Server(
        # Proxy headers are the app's to trust (api/proxy.py), as under serve.
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            proxy_headers=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 30, "the test server to start")
    if not server.started:
        raise RuntimeError("batchgate test server did not start")
    port_number = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(api_key, store, settings, base_url=f"http://127.0.0.1:{port_number}")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()
