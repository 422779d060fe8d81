"""Continuous batching with shared-prefix reuse, one ``llama_decode`` per step.

Each step builds one batch: first the next token of every generating
sequence, then prompt chunks (prefixes being cached first, then requests in
admission order) until the step's token budget (``n_batch``) is spent. A long
prompt is thus prefilled over several steps while the others keep decoding,
and a slot freed by a finished request is refilled at the start of the next
step. The batch lists its sequences in id order: with one KV stream per
sequence llama.cpp cuts a batch at every gap in the ids (see
:func:`.profile.ubatch_count`), and each cut is another pass over the weights.

Prefix reuse: KV sequences ``n_parallel ..`` hold prompt prefixes. When a new
request's prompt shares at least ``MIN_SHARED_TOKENS`` leading tokens with
another queued or recent prompt, that shared part is prefilled once into a
prefix sequence, and every request starting with it gets a copy of its KV cache
(``llama_memory_seq_cp``) and prefills only the rest. Requests that match a
prefix still being computed wait for it rather than compute it again.

Runs on the engine thread only.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from batchgate.backends import base
from batchgate.backends.llama_cpp import options, text
from batchgate.backends.llama_cpp import profile as _profile
from batchgate.canonical import chat

if TYPE_CHECKING:
    # Only its type aliases: the module loads the llama_cpp bindings, which
    # the planning (and its tests against a fake runtime) does not need.
    from batchgate.backends.llama_cpp import runtime

# Copying a KV stream takes milliseconds; prefilling 16 tokens on a CPU takes
# tens of them. Even a chat template's default system prompt is worth sharing.
MIN_SHARED_TOKENS = 16
# How many other prompts a new one is compared with to detect a shared prefix.
_PEERS = 16

Deliver = Callable[[chat.ChatResponse | BaseException], None]


class Decoder(Protocol):
    """What the scheduler needs of llama.cpp: :class:`runtime.Runtime` in the
    engine, a scripted fake in the planning tests."""

    n_ctx: int
    n_batch: int

    def render(self, messages: list[dict[str, str]]) -> str: ...
    def tokenize(self, text: str) -> list[runtime.Token]: ...
    def piece_bytes(self, token: runtime.Token, *, special: bool = False) -> bytes: ...
    def is_end_of_generation(self, token: runtime.Token) -> bool: ...
    def new_sampler(
        self, temperature: float, top_p: float | None, top_k: int | None, seed: int | None
    ) -> runtime.Sampler: ...
    def sample_outputs(
        self, picks: Sequence[tuple[runtime.Sampler, int]]
    ) -> list[runtime.Token]: ...
    def free_sampler(self, sampler: runtime.Sampler) -> None: ...
    def batch_clear(self) -> None: ...
    def batch_add(self, token: runtime.Token, pos: int, seq: int, logits: bool) -> int: ...
    def decode(self) -> int: ...
    def seq_clear(self, seq: int) -> None: ...
    def seq_copy_prefix(self, src: int, dst: int, n_tokens: int, unified: bool) -> None: ...


@dataclasses.dataclass(eq=False)
class Job:
    """One request travelling through the engine. ``cancelled`` is set from
    the event-loop thread; the engine drops the job at its next step."""

    request: chat.ChatRequest
    deliver: Deliver
    cancelled: bool = False
    tokens: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Stats:
    """Counters for benchmarks and tests (written by the engine thread only)."""

    admitted: int = 0
    prefix_hits: int = 0
    reused_tokens: int = 0  # prompt tokens copied from a cached prefix
    prefilled_tokens: int = 0  # prompt tokens computed (requests and prefixes)
    steps: int = 0
    profile: _profile.StepProfile = dataclasses.field(default_factory=_profile.StepProfile)


@dataclasses.dataclass(eq=False)
class _Slot:
    seq: int
    job: Job
    sampler: runtime.Sampler
    output: text.OutputText
    admitted: int
    n_past: int = 0  # tokens of this sequence in the KV cache
    next_token: int | None = None  # sampled, to be decoded next step
    n_out: int = 0
    out_index: int = -1  # where this step's logits are in the batch


@dataclasses.dataclass(eq=False)
class _Run:
    """Consecutive tokens of one sequence in a step's batch; ``output``: the
    slot that samples from the logits of the last one."""

    seq: int
    pos: int
    tokens: list[int]
    output: _Slot | None = None


@dataclasses.dataclass(eq=False)
class _Prefix:
    seq: int
    tokens: list[int] = dataclasses.field(default_factory=list)
    n_past: int = 0
    last_used: int = 0

    @property
    def ready(self) -> bool:
        return bool(self.tokens) and self.n_past == len(self.tokens)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class Scheduler:
    def __init__(
        self, rt: Decoder, opts: options.EngineOptions, stats: Stats | None = None
    ) -> None:
        self._rt = rt
        self.stats = stats or Stats()
        self._unified = opts.kv_unified
        self._slots: list[_Slot | None] = [None] * opts.n_parallel
        self._prefixes = (
            [_Prefix(seq=opts.n_parallel + i) for i in range(opts.prefix_slots)]
            if opts.prefix_cache
            else []
        )
        self._pending: collections.deque[Job] = collections.deque()
        self._recent: collections.deque[list[int]] = collections.deque(maxlen=_PEERS)
        self._ticks = itertools.count()

    # -- intake ---------------------------------------------------------------

    def add(self, job: Job) -> None:
        """Tokenize and queue a job, or deliver the reason it cannot run."""
        try:
            job.tokens = self._rt.tokenize(text.prompt_text(job.request, self._rt.render))
        except base.UnsupportedRequest as exc:
            job.deliver(exc)
            return
        if len(job.tokens) >= self._rt.n_ctx:
            job.deliver(
                base.UnsupportedRequest(
                    f"the prompt is {len(job.tokens)} tokens; this model's context holds "
                    f"{self._rt.n_ctx} tokens per request (prompt + output)"
                )
            )
            return
        self._pending.append(job)

    def idle(self) -> bool:
        return (
            not self._pending
            and all(slot is None for slot in self._slots)
            and not any(p.tokens and not p.ready for p in self._prefixes)
        )

    def step(self) -> None:
        started = time.perf_counter()
        self._reap_cancelled()
        self._admit()
        self._decode_step(self.stats.profile.record("plan", started))

    def fail_all(self, error: BaseException) -> None:
        for slot in self._slots:
            if slot is not None:
                slot.job.deliver(error)
                self._release(slot)
        while self._pending:
            self._pending.popleft().deliver(error)

    def close(self) -> None:
        """Free the native samplers (after fail_all, slots are empty anyway)."""
        for slot in self._slots:
            if slot is not None:
                self._release(slot)

    # -- admission --------------------------------------------------------------

    def _reap_cancelled(self) -> None:
        for slot in self._slots:
            if slot is not None and slot.job.cancelled:
                self._release(slot)
        if any(job.cancelled for job in self._pending):
            self._pending = collections.deque(j for j in self._pending if not j.cancelled)

    def _admit(self) -> None:
        free = [i for i, slot in enumerate(self._slots) if slot is None]
        waiting: collections.deque[Job] = collections.deque()
        while free and self._pending:
            job = self._pending.popleft()
            plan = self._plan(job)
            if plan is None:
                waiting.append(job)
                continue
            self._start(free.pop(0), job, *plan)
        waiting.extend(self._pending)
        self._pending = waiting

    def _plan(self, job: Job) -> tuple[_Prefix | None, int] | None:
        """Where ``job``'s KV comes from: (cached prefix, tokens to copy), or
        None to wait for a prefix that is being computed."""
        if not self._prefixes:
            return None, 0
        limit = len(job.tokens) - 1  # decode at least one token to get logits
        best, best_len = None, 0
        for prefix in self._prefixes:
            if prefix.tokens:
                n = min(_common_prefix(prefix.tokens, job.tokens), limit)
                if n > best_len:
                    best, best_len = prefix, n
        if best is not None and best_len >= MIN_SHARED_TOKENS:
            return (best, best_len) if best.ready else None
        peers = [other.tokens for other in itertools.islice(self._pending, _PEERS)]
        peers.extend(self._recent)
        shared = min(limit, max((_common_prefix(job.tokens, p) for p in peers), default=0))
        if shared >= MIN_SHARED_TOKENS:
            victim = self._evictable()
            if victim is not None:
                self._rt.seq_clear(victim.seq)
                victim.tokens, victim.n_past = job.tokens[:shared], 0
                return None
        return None, 0

    def _evictable(self) -> _Prefix | None:
        """An empty prefix sequence, else the least recently used ready one."""
        candidates = [p for p in self._prefixes if not p.tokens or p.ready]
        return min(candidates, key=lambda p: (bool(p.tokens), p.last_used), default=None)

    def _start(self, seq: int, job: Job, prefix: _Prefix | None, n_reused: int) -> None:
        request = job.request
        self.stats.admitted += 1
        if prefix is not None:
            self._rt.seq_copy_prefix(prefix.seq, seq, n_reused, self._unified)
            prefix.last_used = next(self._ticks)
            self.stats.prefix_hits += 1
            self.stats.reused_tokens += n_reused
        else:
            self._rt.seq_clear(seq)
        temperature = 1.0 if request.temperature is None else request.temperature
        sampler = self._rt.new_sampler(temperature, request.top_p, request.top_k, request.seed)
        self._slots[seq] = _Slot(
            seq=seq,
            job=job,
            sampler=sampler,
            output=text.OutputText(request.stop_sequences),
            admitted=next(self._ticks),
            n_past=n_reused,
        )
        self._recent.append(job.tokens)

    def _release(self, slot: _Slot) -> None:
        self._rt.seq_clear(slot.seq)
        self._rt.free_sampler(slot.sampler)
        self._slots[slot.seq] = None

    # -- one decode step --------------------------------------------------------

    def _decode_step(self, started: float) -> None:
        rt, profile = self._rt, self.stats.profile
        runs, sampling, filling, n_generating = self._plan_batch()
        if not runs:
            return
        # In sequence order: llama.cpp cuts a batch at every gap in the
        # sequence ids (one KV stream each), so this keeps the passes over
        # the weights per step to a minimum (see profile.ubatch_count).
        runs.sort(key=lambda run: run.seq)
        rt.batch_clear()
        for run in runs:
            last = len(run.tokens) - 1
            for offset, token in enumerate(run.tokens):
                wanted = run.output is not None and offset == last
                index = rt.batch_add(token, run.pos + offset, run.seq, wanted)
                if wanted and run.output is not None:
                    run.output.out_index = index
        n_tokens = sum(len(run.tokens) for run in runs)
        self.stats.steps += 1
        self.stats.prefilled_tokens += n_tokens - n_generating
        profile.steps += 1
        profile.tokens += n_tokens
        profile.generated += n_generating
        profile.sizes[n_tokens] += 1
        profile.ubatches += _profile.ubatch_count(
            [(run.seq, len(run.tokens)) for run in runs], rt.n_batch, unified=self._unified
        )
        started = profile.record("assemble", started)
        status = rt.decode()
        started = profile.record("decode", started)
        if status != 0:
            self._decode_failed(status, filling)
            return
        tokens = rt.sample_outputs([(slot.sampler, slot.out_index) for slot in sampling])
        started = profile.record("sample", started)
        for slot, token in zip(sampling, tokens, strict=True):
            self._accept(slot, token)
        profile.record("accept", started)

    def _plan_batch(self) -> tuple[list[_Run], list[_Slot], list[_Prefix], int]:
        """This step's work within the token budget: the next token of every
        generating sequence, then prompt chunks (prefixes being cached first,
        then requests in admission order). Returns the runs, the slots to
        sample afterwards, the prefixes touched and how many runs generate."""
        budget = self._rt.n_batch
        active = [slot for slot in self._slots if slot is not None]
        runs: list[_Run] = []
        sampling: list[_Slot] = []
        for slot in active:
            if slot.next_token is not None:
                runs.append(_Run(slot.seq, slot.n_past, [slot.next_token], slot))
                slot.n_past += 1
                slot.next_token = None
                sampling.append(slot)
                budget -= 1
        n_generating = len(runs)
        filling = [p for p in self._prefixes if p.tokens and not p.ready]
        for prefix in filling:
            chunk = min(budget, len(prefix.tokens) - prefix.n_past)
            if chunk > 0:
                end = prefix.n_past + chunk
                runs.append(_Run(prefix.seq, prefix.n_past, prefix.tokens[prefix.n_past : end]))
                prefix.n_past, budget = end, budget - chunk
        prefilling = sorted(
            (s for s in active if s.n_past < len(s.job.tokens)), key=lambda s: s.admitted
        )
        for slot in prefilling:
            if budget <= 0:
                break
            tokens = slot.job.tokens
            end = min(len(tokens), slot.n_past + budget)
            # Logits only for the prompt's last token: the first one sampled.
            done = end == len(tokens)
            runs.append(
                _Run(slot.seq, slot.n_past, tokens[slot.n_past : end], slot if done else None)
            )
            if done:
                sampling.append(slot)
            budget -= end - slot.n_past
            slot.n_past = end
        return runs, sampling, filling, n_generating

    def _decode_failed(self, status: int, filling: list[_Prefix]) -> None:
        # The batch's KV state is unknown now: drop everything it touched.
        for prefix in filling:
            self._rt.seq_clear(prefix.seq)
            prefix.tokens, prefix.n_past = [], 0
        self.fail_all(
            base.BackendError(f"llama_decode failed with status {status}", retryable=True)
        )

    def _accept(self, slot: _Slot, token: int) -> None:
        rt = self._rt
        if rt.is_end_of_generation(token):
            self._finish(slot, "end_turn")
            return
        slot.n_out += 1
        stop = slot.output.feed(rt.piece_bytes(token))
        if stop is not None:
            self._finish(slot, "stop_sequence", stop)
        elif slot.n_out >= slot.job.request.max_tokens or slot.n_past >= rt.n_ctx:
            # A full context ends the reply like max_tokens: no room for more.
            self._finish(slot, "max_tokens")
        else:
            slot.next_token = token

    def _finish(
        self, slot: _Slot, reason: chat.StopReason, stop_sequence: str | None = None
    ) -> None:
        job = slot.job
        self._release(slot)
        job.deliver(
            chat.ChatResponse(
                id=f"msg_{uuid.uuid4().hex}",
                model=job.request.model,
                content=[chat.TextBlock(text=slot.output.finish())],
                stop_reason=reason,
                stop_sequence=stop_sequence,
                usage=chat.Usage(input_tokens=len(job.tokens), output_tokens=slot.n_out),
            )
        )
