"""Run a real batchgate server for tests: uvicorn on a free 127.0.0.1 port in a
background thread, with its worker, on a real SQLite or PostgreSQL store."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from batchgate import config, runtime
from batchgate.domain import keys as key_model
from batchgate.domain.states import BatchStatus
from batchgate.services.keys import KeyService
from batchgate.store import port

API_KEY = "bg-test-key-0123456789abcdef"
# The model name tests route to the fake upstream.
FAKE_MODEL = "fake-chat"


class RunningServer:
    def __init__(
        self, url: str, api_key: str, store: port.JobStore, settings: config.Settings
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.store = store
        self.settings = settings

    def client(self, api_key: str | None = None, **headers: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=60,
            headers={"authorization": f"Bearer {api_key or self.api_key}", **headers},
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
        deadline = time.monotonic() + timeout
        with self.client(api_key, accept="application/json") as client:
            while True:
                batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
                if BatchStatus(batch["status"]).is_ended:
                    return batch
                if time.monotonic() > deadline:
                    raise TimeoutError(f"batch {batch_id} still {batch['status']}")
                time.sleep(0.05)


def openai_model(name: str, base_url: str, **extra: Any) -> config.ModelConfig:
    return config.ModelConfig(name=name, backend="openai_compatible", base_url=base_url, **extra)


def make_settings(
    tmp_path: Path,
    models: dict[str, config.ModelConfig],
    database_url: str | None = None,
    **worker: Any,
) -> config.Settings:
    return config.Settings(
        data_dir=tmp_path,
        database_url=database_url,
        models=models,
        worker=config.WorkerSettings(
            **{"poll_seconds": 0.05, "sweep_seconds": 0.2, "backoff_base_seconds": 0.05, **worker}
        ),
    )


@contextlib.contextmanager
def serve(
    settings: config.Settings,
    api_key: str = API_KEY,
    with_worker: bool = True,
    store: port.JobStore | None = None,
) -> Iterator[RunningServer]:
    """The API on a free loopback port; ``store`` instead of the settings'
    database (then no key is registered: it may be one nothing can reach)."""
    if store is None:
        store = runtime.open_store(settings)
        KeyService(store).register("test", api_key)
    app = runtime.create_server_app(settings, store, with_worker=with_worker)
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
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("batchgate test server did not start")
        time.sleep(0.01)
    port_number = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(f"http://127.0.0.1:{port_number}", api_key, store, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()
