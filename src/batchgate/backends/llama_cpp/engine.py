"""The engine thread: owns the llama.cpp model and contexts and runs them.

llama.cpp calls block for tens to hundreds of milliseconds, so they run on a
dedicated thread and the asyncio server stays responsive. The thread is
started by the first :meth:`Engine.submit`, which is also when the model is
loaded. Jobs arrive through a queue; results go back through each job's
``deliver`` callback (thread-safe by contract).

One model, two kinds of work: chat jobs go to the continuous-batching
:class:`.scheduler.Scheduler`, embeddings jobs to the :class:`.embedder.Embedder`.
Each has its own context over the shared weights, created when its first job
arrives (a chat-only deployment never allocates an embeddings context and an
embeddings-only model never allocates the chat KV cache); each loop turn runs
one step of each that has work.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Literal

from batchgate.backends import base
from batchgate.backends.llama_cpp import embedder, model, options, runtime, scheduler

AnyJob = scheduler.Job | embedder.EmbedJob
_Command = AnyJob | Literal["wake", "stop"]


class Engine:
    def __init__(self, opts: options.EngineOptions, model_path: Path) -> None:
        self._opts = opts
        self._model_path = model_path
        self._inbox: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.stats = scheduler.Stats()
        self.embed_stats = embedder.EmbedStats()

    def submit(self, job: AnyJob) -> None:
        with self._lock:
            if self._closed:
                raise base.BackendError("the llama_cpp engine is closed", retryable=True)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="batchgate-llama-cpp", daemon=True
                )
                self._thread.start()
            self._inbox.put(job)

    def wake(self) -> None:
        """Make the engine look at cancellation flags now, even if idle."""
        self._inbox.put("wake")

    def close(self) -> None:
        """Stop the thread (failing unfinished jobs) and free the model. Blocks."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._inbox.put("stop")
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            loaded = model.acquire(self._model_path, verbose=self._opts.verbose)
        except Exception as exc:
            self._refuse_all(
                base.BackendError(
                    f"llama_cpp could not load {self._model_path}: {exc}", retryable=False
                )
            )
            return
        work = _Work(self._opts, loaded, self.stats, self.embed_stats)
        closed = base.BackendError("the llama_cpp engine was closed", retryable=True)
        try:
            while self._take_commands(work):
                work.step()
        except Exception as exc:  # a bug or a native failure: fail loudly, not hang
            closed = base.BackendError(f"llama_cpp engine failed: {exc!r}", retryable=True)
            raise
        finally:
            work.fail_all(closed)
            work.close()
            self._refuse_all(closed)
            model.release(loaded)

    def _take_commands(self, work: _Work) -> bool:
        """Move queued commands into the work, blocking while there is none.
        False once asked to stop."""
        while True:
            try:
                command = self._inbox.get(block=work.idle())
            except queue.Empty:
                return True
            if command == "stop":
                return False
            if isinstance(command, scheduler.Job | embedder.EmbedJob):
                work.add(command)

    def _refuse_all(self, error: base.BackendError) -> None:
        """After the thread gave up: fail queued jobs and refuse new ones."""
        with self._lock:
            self._closed = True
        while True:
            try:
                command = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(command, scheduler.Job | embedder.EmbedJob):
                command.deliver(error)


class _Work:
    """The chat scheduler and the embedder over one model, each made on first use.
    A part that cannot be made refuses its jobs with the reason, for good."""

    def __init__(
        self,
        opts: options.EngineOptions,
        loaded: model.Model,
        stats: scheduler.Stats,
        embed_stats: embedder.EmbedStats,
    ) -> None:
        self._opts = opts
        self._model = loaded
        self._stats = stats
        self._embed_stats = embed_stats
        self._rt: runtime.Runtime | None = None
        self._chat: scheduler.Scheduler | None = None
        self._embed: embedder.Embedder | None = None
        self._chat_error: base.BackendError | None = None
        self._embed_error: base.BackendError | None = None

    def add(self, job: AnyJob) -> None:
        if isinstance(job, scheduler.Job):
            chat = self._chat_part()
            if chat is None:
                job.deliver(self._chat_error or RuntimeError("no chat engine"))
            else:
                chat.add(job)
        else:
            embed = self._embed_part()
            if embed is None:
                job.deliver(self._embed_error or RuntimeError("no embeddings engine"))
            else:
                embed.add(job)

    def _chat_part(self) -> scheduler.Scheduler | None:
        if self._chat is None and self._chat_error is None:
            try:
                self._rt = runtime.Runtime(self._opts, self._model)
            except Exception as exc:
                self._chat_error = base.BackendError(
                    f"llama_cpp cannot generate with {self._model.path}: {exc}", retryable=False
                )
                return None
            self._chat = scheduler.Scheduler(self._rt, self._opts, self._stats)
        return self._chat

    def _embed_part(self) -> embedder.Embedder | None:
        if self._embed is None and self._embed_error is None:
            try:
                self._embed = embedder.Embedder(self._model, self._opts, self._embed_stats)
            except Exception as exc:
                self._embed_error = base.BackendError(
                    f"llama_cpp cannot embed with {self._model.path}: {exc}", retryable=False
                )
        return self._embed

    def idle(self) -> bool:
        return (self._chat is None or self._chat.idle()) and (
            self._embed is None or self._embed.idle()
        )

    def step(self) -> None:
        if self._chat is not None and not self._chat.idle():
            self._chat.step()
        if self._embed is not None and not self._embed.idle():
            self._embed.step()

    def fail_all(self, error: BaseException) -> None:
        if self._chat is not None:
            self._chat.fail_all(error)
        if self._embed is not None:
            self._embed.fail_all(error)

    def close(self) -> None:
        if self._chat is not None:
            self._chat.close()
        if self._rt is not None:
            self._rt.close()
        if self._embed is not None:
            self._embed.close()
