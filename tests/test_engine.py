"""The annotate engine: cache, parse retries, failures, batching, concurrency, order."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from explainft.annotate.base import Backend, BackendError, BatchBackend, TeacherConfig
from explainft.annotate.cache import ResponseCache
from explainft.annotate.engine import Annotator
from explainft.records import Conversation, Turn

DIMS = ("naturalness", "on_topic")
VARIANTS = ("scale4", "scale5")


def convs(n=3):
    return [Conversation(id=f"d/{i}", dataset="d",
                         turns=(Turn("user", f"What is {i} plus {i}?"), Turn("assistant", f"It is {2 * i}.")))
            for i in range(n)]


class Scripted(Backend):
    """A teacher whose reply is ``script(messages, request, n)``; records every call."""

    kind = "openai"  # identity only; nothing is sent anywhere

    def __init__(self, name, script, concurrency=4):
        super().__init__(TeacherConfig(name=name, backend="openai", model=f"model-{name}"))
        self.script = script
        self.calls = []
        self.concurrency = concurrency
        self.in_flight = 0
        self.max_in_flight = 0

    async def acomplete(self, messages, request=None):
        self.calls.append(messages)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            return self.script(messages, request, len(self.calls))
        finally:
            self.in_flight -= 1


def good(score=3):
    return lambda m, r, n: json.dumps({"score": min(score, r.prompt.scale), "assessment": f"because {r.item_id}",
                                       "confidence": "fairly sure"})


def run(annotator, items=None):
    return annotator.run(items or convs(), DIMS, VARIANTS)


def test_every_item_dimension_teacher_prompt_gives_one_rating_in_a_fixed_order(tmp_path):
    a, b = Scripted("a", good(3)), Scripted("b", good(4))
    ratings = run(Annotator([a, b], ResponseCache(tmp_path / "c.sqlite")))
    assert len(ratings) == 3 * 2 * 2 * 2
    keys = [(r.id, r.dimension, r.teacher, r.prompt) for r in ratings]
    assert keys == [(f"d/{i}", d, t, v) for i in range(3) for d in DIMS for t in ("a", "b") for v in VARIANTS]
    assert all(r.status == "ok" for r in ratings)
    assert {r.raw_score for r in ratings if r.teacher == "a"} == {3}
    assert {(r.prompt, r.scale) for r in ratings} == {("scale4", 4), ("scale5", 5)}
    assert ratings[0].assessment == "because d/0" and ratings[0].confidence == "fairly sure"


def test_a_rerun_sends_nothing_and_writes_identical_records(tmp_path):
    cache_path = tmp_path / "c.sqlite"
    a = Scripted("a", good(2))
    first = run(Annotator([a], ResponseCache(cache_path)))
    assert len(a.calls) == 12
    again = Scripted("a", lambda m, r, n: pytest.fail("a cached request was sent again"))
    ann = Annotator([again], ResponseCache(cache_path))
    second = run(ann)
    assert [r.to_dict() for r in second] == [r.to_dict() for r in first]
    assert ann.stats.requests_sent == 0 and ann.stats.cache_hits == 12
    # the cache holds replies and identities only
    rows = sqlite3.connect(cache_path).execute("SELECT backend, model FROM responses").fetchall()
    assert set(rows) == {("openai", "model-a")}


def test_a_different_sampling_setting_is_a_different_cache_key(tmp_path):
    cache_path = tmp_path / "c.sqlite"
    run(Annotator([Scripted("a", good(2))], ResponseCache(cache_path)))
    b = Scripted("a", good(4))
    b.teacher = TeacherConfig(name="a", backend="openai", model="model-a", sampling={"temperature": 0.7})
    ratings = run(Annotator([b], ResponseCache(cache_path)))
    assert len(b.calls) == 12 and {r.raw_score for r in ratings} == {4}


def test_unparsable_reply_is_retried_with_a_correction_then_counted(tmp_path):
    def script(m, r, n):
        if len(m) == 2:  # first attempt: prose without a score
            return "What a lovely conversation."
        assert m[2] == {"role": "assistant", "content": "What a lovely conversation."}
        assert "could not be used" in m[3]["content"] and m[3]["role"] == "user"
        return json.dumps({"score": 2, "assessment": "ok", "confidence": "ok"})

    a = Scripted("a", script)
    ann = Annotator([a], ResponseCache(tmp_path / "c.sqlite"), max_parse_retries=2)
    ratings = run(ann, convs(1))
    assert all(r.status == "ok" and r.raw_score == 2 for r in ratings)
    assert ann.stats.parse_retries == 4 and len(a.calls) == 8

    never = Scripted("b", lambda m, r, n: "no score here, sorry")
    ann = Annotator([never], ResponseCache(tmp_path / "d.sqlite"), max_parse_retries=1)
    ratings = run(ann, convs(1))
    assert all(r.status == "unparsable" and r.raw_score is None for r in ratings)
    assert all(r.error.startswith("after 2 attempts") for r in ratings)
    assert len(never.calls) == 4 * 2
    s = ann.stats.to_dict()
    assert s["unparsable"] == 4 and s["failure_rate"] == 1.0
    assert s["by_teacher_prompt"]["b/scale4"] == {"n": 2, "ok": 0, "unparsable": 2, "failed": 0, "failure_rate": 1.0}


def test_out_of_range_score_is_unparsable_never_clamped(tmp_path):
    a = Scripted("a", lambda m, r, n: json.dumps({"score": 7, "assessment": "x", "confidence": "y"}))
    ratings = run(Annotator([a], ResponseCache(tmp_path / "c.sqlite"), max_parse_retries=0), convs(1))
    assert all(r.status == "unparsable" and r.raw_score is None for r in ratings)
    assert all("7" in r.error for r in ratings)


def test_backend_failure_is_recorded_not_cached_and_retried_by_a_rerun(tmp_path):
    def flaky(m, r, n):
        raise BackendError("http://127.0.0.1:9/v1: 503 Service Unavailable after 6 attempts")

    a = Scripted("a", flaky)
    cache_path = tmp_path / "c.sqlite"
    ratings = run(Annotator([a], ResponseCache(cache_path)), convs(1))
    assert all(r.status == "failed" and "503" in r.error and r.raw_score is None for r in ratings)
    assert len(ResponseCache(cache_path)) == 0
    healed = Scripted("a", good(3))
    ratings = run(Annotator([healed], ResponseCache(cache_path)), convs(1))
    assert len(healed.calls) == 4 and all(r.status == "ok" for r in ratings)


def test_in_flight_requests_are_bounded_per_teacher(tmp_path):
    a = Scripted("a", good(), concurrency=3)
    run(Annotator([a], ResponseCache(tmp_path / "c.sqlite")), convs(10))
    assert a.max_in_flight == 3


class Batchy(BatchBackend):
    kind = "transformers"
    batch_size = 5

    def __init__(self):
        super().__init__(TeacherConfig(name="local", backend="transformers", model="tiny"))
        self.batches = []

    def complete_batch(self, batch):
        self.batches.append(len(batch))
        return [json.dumps({"score": 1, "assessment": "short", "confidence": "low"}) if i % 4 else
                BackendError("generation failed: out of memory") for i, _ in enumerate(batch)]


def test_batch_backends_get_first_attempts_in_batches(tmp_path):
    b = Batchy()
    ann = Annotator([b], ResponseCache(tmp_path / "c.sqlite"))
    ratings = run(ann, convs(3))  # 12 requests -> batches of 5, 5, 2
    assert b.batches[:3] == [5, 5, 2]
    failed = [r for r in ratings if r.status == "failed"]
    # positions 0 and 4 of each batch fail: 2 + 2 + 1; not cached, so each is asked once more on its own
    # (a batch of one, where it is position 0 again and fails again)
    assert len(failed) == 5 and b.batches[3:] == [1] * 5
    assert all("out of memory" in r.error for r in failed)
    assert len(ResponseCache(tmp_path / "c.sqlite")) == 7
    b2 = Batchy()
    run(Annotator([b2], ResponseCache(tmp_path / "c.sqlite")), convs(3))
    assert b2.batches[0] == 5  # only the 5 uncached ones


def test_teacher_names_must_be_unique(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        Annotator([Scripted("a", good()), Scripted("a", good())], None)
