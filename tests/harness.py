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
from batchgate.services.keys import KeyService
from batchgate.store import port

API_KEY = "bg-test-key-0123456789abcdef"


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

    def new_key(self, name: str = "other") -> str:
        _record, secret = KeyService(self.store).create(name)
        return secret

    def wait_ended(
        self, batch_id: str, timeout: float = 60.0, api_key: str | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(api_key, accept="application/json") as client:
            while True:
                batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
                if batch["status"] in {"completed", "cancelled", "expired", "failed"}:
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
    settings: config.Settings, api_key: str = API_KEY, with_worker: bool = True
) -> Iterator[RunningServer]:
    store = runtime.open_store(settings)
    KeyService(store).register("test", api_key)
    app = runtime.create_server_app(settings, store, with_worker=with_worker)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
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
