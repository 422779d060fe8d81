"""The llama.cpp scheduler's planning, against a fake runtime: what goes into
each decode step, when a request is admitted, and when a shared prompt
prefix is computed once and copied. No model is loaded."""

from __future__ import annotations

import dataclasses
from typing import Any

from batchgate.backends import base
from batchgate.backends.llama_cpp import options, scheduler
from batchgate.canonical import chat

EOG = 0  # the fake's end-of-generation token
OUT = ord("a")  # what the fake samples otherwise


@dataclasses.dataclass
class FakeSampler:
    eog_after: int | None  # emit end-of-generation after this many tokens
    emitted: int = 0


@dataclasses.dataclass(frozen=True)
class Entry:
    token: int
    pos: int
    seq: int
    logits: bool


class FakeRuntime:
    """Characters are tokens; every step's batch is recorded."""

    def __init__(self, *, n_ctx: int = 512, n_batch: int = 64, eog_after: int | None = None):
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.eog_after = eog_after
        self.batch: list[Entry] = []
        self.steps: list[list[Entry]] = []
        self.copies: list[tuple[int, int, int]] = []
        self.cleared: list[int] = []
        self.decode_status = 0

    def render(self, messages: list[dict[str, str]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def tokenize(self, text: str) -> list[int]:
        return [ord(char) for char in text]

    def piece_bytes(self, token: int, *, special: bool = False) -> bytes:
        return bytes([token])

    def is_end_of_generation(self, token: int) -> bool:
        return token == EOG

    def new_sampler(self, *_args: Any) -> FakeSampler:
        return FakeSampler(self.eog_after)

    def sample_outputs(self, picks: list[tuple[FakeSampler, int]]) -> list[int]:
        return [self.sample(sampler, index) for sampler, index in picks]

    def sample(self, sampler: FakeSampler, output_index: int) -> int:
        assert self.batch[output_index].logits
        if sampler.eog_after is not None and sampler.emitted >= sampler.eog_after:
            return EOG
        sampler.emitted += 1
        return OUT

    def free_sampler(self, sampler: FakeSampler) -> None:
        pass

    def batch_clear(self) -> None:
        self.batch = []

    def batch_add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        self.batch.append(Entry(token, pos, seq, logits))
        return len(self.batch) - 1

    def decode(self) -> int:
        self.steps.append(list(self.batch))
        return self.decode_status

    def seq_clear(self, seq: int) -> None:
        self.cleared.append(seq)

    def seq_copy_prefix(self, src: int, dst: int, n_tokens: int, unified: bool) -> None:
        self.copies.append((src, dst, n_tokens))


class Inbox:
    """Collects what jobs deliver."""

    def __init__(self) -> None:
        self.got: dict[str, chat.ChatResponse | BaseException] = {}

    def job(
        self, name: str, text: str, *, system: str | None = None, **params: Any
    ) -> scheduler.Job:
        request = chat.ChatRequest.model_validate(
            {
                "model": "m",
                "max_tokens": params.pop("max_tokens", 4),
                "messages": [{"role": "user", "content": text}],
                **({"system": system} if system else {}),
                **params,
            }
        )
        return scheduler.Job(request, lambda result: self.got.__setitem__(name, result))


def engine(rt: FakeRuntime, **opts: Any) -> scheduler.Scheduler:
    settings = {"n_parallel": 2, "n_batch": rt.n_batch, "n_ctx": rt.n_ctx, **opts}
    return scheduler.Scheduler(rt, options.EngineOptions(**settings))  # type: ignore[arg-type]


def run(sched: scheduler.Scheduler, limit: int = 200) -> None:
    for _ in range(limit):
        if sched.idle():
            return
        sched.step()
    raise AssertionError("the scheduler never went idle")


def test_a_prompt_that_fills_the_context_is_refused_before_it_queues() -> None:
    rt, inbox = FakeRuntime(n_ctx=64), Inbox()
    sched = engine(rt)
    sched.add(inbox.job("long", "x" * 100))
    assert isinstance(inbox.got["long"], base.UnsupportedRequest)
    assert sched.idle() and rt.steps == []


def test_requests_in_flight_share_each_decode_step() -> None:
    rt, inbox = FakeRuntime(), Inbox()
    sched = engine(rt, prefix_cache=False)
    sched.add(inbox.job("a", "one"))
    sched.add(inbox.job("b", "two"))
    run(sched)
    assert set(inbox.got) == {"a", "b"}
    assert all({entry.seq for entry in step} == {0, 1} for step in rt.steps)


def test_a_step_never_holds_more_than_n_batch_tokens() -> None:
    rt, inbox = FakeRuntime(n_batch=16), Inbox()
    sched = engine(rt, prefix_cache=False)
    sched.add(inbox.job("a", "y" * 60))
    sched.add(inbox.job("b", "z" * 60))
    run(sched)
    assert max(len(step) for step in rt.steps) == 16
    assert len(inbox.got) == 2


def test_a_long_prompt_is_prefilled_in_chunks_while_another_request_decodes() -> None:
    rt, inbox = FakeRuntime(n_batch=32), Inbox()
    sched = engine(rt, prefix_cache=False)
    sched.add(inbox.job("short", "hi", max_tokens=20))
    sched.step()  # the short prompt is prefilled whole
    sched.add(inbox.job("long", "w" * 100))
    sched.step()
    sched.step()
    last_two = rt.steps[-2:]
    for step in last_two:
        # seq 0 decodes its next token first; seq 1's prompt fills the rest
        assert step[0].seq == 0 and step[0].logits
        assert {entry.seq for entry in step[1:]} == {1} and len(step) == 32
    assert "long" not in inbox.got  # 100+ prompt tokens take more than two steps


def test_a_freed_slot_is_refilled_at_the_next_step() -> None:
    rt, inbox = FakeRuntime(eog_after=1), Inbox()
    sched = engine(rt, n_parallel=1, prefix_cache=False)
    sched.add(inbox.job("first", "one"))
    sched.add(inbox.job("second", "two"))
    while "first" not in inbox.got:
        sched.step()
    finished_at = len(rt.steps)
    sched.step()
    assert len(rt.steps) == finished_at + 1
    assert rt.steps[-1][0].pos == 0  # the second prompt starts at once


def test_a_shared_prompt_prefix_is_computed_once_and_copied() -> None:
    rt, inbox = FakeRuntime(), Inbox()
    sched = engine(rt, prefix_slots=1)
    system = "You answer in one short sentence, politely."
    sched.add(inbox.job("a", "first question", system=system))
    sched.add(inbox.job("b", "second one", system=system))
    run(sched)
    shared = len(
        rt.render([{"role": "system", "content": system}, {"role": "user", "content": ""}])
    ) - len("<assistant>")
    prefix_seq = 2  # after the two request slots
    assert sorted(rt.copies) == [(prefix_seq, 0, shared), (prefix_seq, 1, shared)]
    assert sched.stats.prefix_hits == 2 and sched.stats.reused_tokens == 2 * shared
    prefilled = [e for step in rt.steps for e in step if e.seq == prefix_seq]
    assert len(prefilled) == shared  # once, not once per request


def test_prompts_sharing_less_than_the_minimum_use_no_prefix() -> None:
    rt, inbox = FakeRuntime(), Inbox()
    sched = engine(rt)
    sched.add(inbox.job("a", "apples"))  # "<user>a" shares 7 tokens with "<user>b"
    sched.add(inbox.job("b", "bananas"))
    run(sched)
    assert rt.copies == [] and sched.stats.prefix_hits == 0


def test_a_cancelled_request_frees_its_slot_and_gets_no_reply() -> None:
    rt, inbox = FakeRuntime(), Inbox()
    sched = engine(rt, prefix_cache=False)
    job = inbox.job("a", "hello", max_tokens=50)
    sched.add(job)
    sched.step()
    job.cancelled = True
    sched.step()
    assert sched.idle() and inbox.got == {}
    assert rt.cleared[-1] == 0


def test_generation_stops_at_max_tokens() -> None:
    rt, inbox = FakeRuntime(), Inbox()
    sched = engine(rt, prefix_cache=False)
    sched.add(inbox.job("a", "hello", max_tokens=3))
    run(sched)
    reply = inbox.got["a"]
    assert isinstance(reply, chat.ChatResponse)
    assert (reply.text(), reply.stop_reason, reply.usage.output_tokens) == ("aaa", "max_tokens", 3)


def test_generation_stops_at_the_end_of_generation_token() -> None:
    rt, inbox = FakeRuntime(eog_after=2), Inbox()
    sched = engine(rt, prefix_cache=False)
    sched.add(inbox.job("a", "hello", max_tokens=50))
    run(sched)
    reply = inbox.got["a"]
    assert isinstance(reply, chat.ChatResponse)
    assert (reply.text(), reply.stop_reason) == ("aa", "end_turn")


def test_a_failed_decode_fails_every_request_as_retryable() -> None:
    rt, inbox = FakeRuntime(), Inbox()
    rt.decode_status = 1
    sched = engine(rt, prefix_cache=False)
    sched.add(inbox.job("a", "one"))
    sched.add(inbox.job("b", "two"))
    sched.step()
    assert all(isinstance(got, base.BackendError) and got.retryable for got in inbox.got.values())
    assert set(inbox.got) == {"a", "b"} and sched.idle()


def test_a_step_lists_its_sequences_in_id_order() -> None:
    # seq 1 finishes first and takes the queued prompt while 0 and 2 decode:
    # in id order its first prompt token joins their one-token decodes in
    # llama.cpp's first graph compute instead of cutting it in two.
    rt, inbox = FakeRuntime(), Inbox()
    sched = engine(rt, n_parallel=3, prefix_cache=False)
    sched.add(inbox.job("a", "one", max_tokens=30))
    sched.add(inbox.job("b", "two", max_tokens=2))
    sched.add(inbox.job("c", "three", max_tokens=30))
    sched.add(inbox.job("d", "four", max_tokens=30))
    run(sched)
    assert len(inbox.got) == 4
    refill = next(
        step
        for step in rt.steps[1:]
        if any(e.seq == 1 and e.pos == 0 for e in step)
        and [e.seq for e in step].count(0) == [e.seq for e in step].count(2) == 1
    )
    assert [e.seq for e in refill] == sorted(e.seq for e in refill)
    assert sched.stats.profile.ubatches <= sched.stats.profile.steps + 3


def test_the_profile_counts_every_step_and_token() -> None:
    rt, inbox = FakeRuntime(), Inbox()
    sched = engine(rt, prefix_cache=False)
    sched.add(inbox.job("a", "one", max_tokens=5))
    sched.add(inbox.job("b", "two", max_tokens=5))
    run(sched)
    profile = sched.stats.profile
    assert profile.steps == len(rt.steps) == sched.stats.steps
    assert profile.tokens == sum(len(step) for step in rt.steps)
    assert profile.generated == 2 * 4  # the first token of each comes from its prompt
    assert all(seconds >= 0 for seconds in profile.seconds.values())
    assert "graph computes per step" in profile.summary()
