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
    return [
        Conversation(
            id=f"d/{i}",
            dataset="d",
            turns=(Turn("user", f"What is {i} plus {i}?"), Turn("assistant", f"It is {2 * i}.")),
        )
        for i in range(n)
    ]


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
    return lambda m, r, n: json.dumps(
        {"score": min(score, r.prompt.scale), "assessment": f"because {r.item_id}", "confidence": "fairly sure"}
    )


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
        return [
            json.dumps({"score": 1, "assessment": "short", "confidence": "low"})
            if i % 4
            else BackendError("generation failed: out of memory")
            for i, _ in enumerate(batch)
        ]


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


# --------------------------------------------------------------------------- per-group counts, max_failed_share


def test_stats_count_failed_and_unparsable_per_teacher_prompt_and_dimension(tmp_path):
    def script(m, r, n):
        if r.dimension == "on_topic" and r.prompt.variant == "scale5":
            raise BackendError("HTTP 503")
        if r.dimension == "naturalness" and r.prompt.variant == "scale4" and r.item_id == "d/0":
            return "no score"
        return good(2)(m, r, n)

    ann = Annotator([Scripted("a", script)], ResponseCache(tmp_path / "c.sqlite"), max_parse_retries=0)
    run(ann)
    s = ann.stats.to_dict()
    assert s["by_teacher_prompt_dimension"] == {
        "a/scale4/naturalness": {"n": 3, "ok": 2, "unparsable": 1, "failed": 0, "failed_share": 0.0},
        "a/scale4/on_topic": {"n": 3, "ok": 3, "unparsable": 0, "failed": 0, "failed_share": 0.0},
        "a/scale5/naturalness": {"n": 3, "ok": 3, "unparsable": 0, "failed": 0, "failed_share": 0.0},
        "a/scale5/on_topic": {"n": 3, "ok": 0, "unparsable": 0, "failed": 3, "failed_share": 1.0},
    }
    # the per teacher/prompt view is the sum over dimensions, as before
    assert s["by_teacher_prompt"]["a/scale5"] == {"n": 6, "ok": 3, "unparsable": 0, "failed": 3, "failure_rate": 0.5}
    assert s["by_teacher_prompt"]["a/scale4"] == {
        "n": 6,
        "ok": 5,
        "unparsable": 1,
        "failed": 0,
        "failure_rate": 0.166667,
    }


def rating(i, teacher="mixtral", prompt="scale5", dim="naturalness", status="ok", error=None):
    from explainft.records import Rating

    return Rating(
        id=f"d/{i}",
        dimension=dim,
        teacher=teacher,
        prompt=prompt,
        scale=5,
        raw_score=3 if status == "ok" else None,
        assessment="",
        confidence="",
        status=status,
        error=error,
    )


def test_failed_share_above_the_threshold_names_every_group_with_counts_and_first_error():
    from explainft.annotate.engine import FailedShareError, check_failed_share

    ratings = []
    for i in range(2000):  # ratings in the engine's fixed order: item, dimension, teacher, prompt
        for dim in ("naturalness", "on_topic"):
            ratings.append(rating(i, "titan", "scale4", dim))
            # mixtral fails wholesale on naturalness, 41 of 2,000 (2.05%) on on_topic
            failing = i >= 2 if dim == "naturalness" else i < 41
            ratings.append(
                rating(
                    i,
                    "mixtral",
                    "scale4",
                    dim,
                    status="failed" if failing else "ok",
                    error=f"HTTP 503 for item {i}" if failing else None,
                )
            )
            ratings.append(
                rating(
                    i,
                    "mixtral",
                    "scale5",
                    dim,
                    status="unparsable" if i < 1000 else "failed" if i < 1040 else "ok",
                    error="after 3 attempts: no score" if i < 1000 else "timed out" if i < 1040 else None,
                )
            )
    with pytest.raises(FailedShareError) as info:
        check_failed_share(ratings, 0.02, note="the cache keeps the replies")
    assert str(info.value) == (
        "2 of 6 teacher × prompt × dimension groups had more failed requests than annotate.max_failed_share (2%) "
        "allows; no output was written:\n"
        "  teacher 'mixtral' prompt scale4 dimension naturalness: 1,998 of 2,000 requests failed "
        "(99.9% > annotate.max_failed_share 2%), 0 unparsable; first error: HTTP 503 for item 2\n"
        "  teacher 'mixtral' prompt scale4 dimension on_topic: 41 of 2,000 requests failed "
        "(2.1% > annotate.max_failed_share 2%), 0 unparsable; first error: HTTP 503 for item 0\n"
        "Fix the cause named in the first errors (credentials, server, model name) and rerun; the cache keeps "
        "the replies. To accept the failures instead, raise annotate.max_failed_share."
    )
    assert [(g["teacher"], g["prompt"], g["dimension"], g["failed"]) for g in info.value.groups] == [
        ("mixtral", "scale4", "naturalness", 1998),
        ("mixtral", "scale4", "on_topic", 41),
    ]
    # mixtral/scale5: 1,000 unparsable but only 40 of 2,000 failed (2%, not above): unparsable is not a failure
    check_failed_share([r for r in ratings if r.prompt == "scale5" or r.teacher == "titan"], 0.02)
    # the threshold is a share: 1.0 accepts everything, 0 nothing
    check_failed_share(ratings, 1.0)
    with pytest.raises(FailedShareError) as info:
        check_failed_share(ratings, 0.0)
    # listed in params order: teacher, then prompt, then dimension
    assert [(g["teacher"], g["prompt"], g["dimension"]) for g in info.value.groups] == [
        ("mixtral", "scale4", "naturalness"),
        ("mixtral", "scale4", "on_topic"),
        ("mixtral", "scale5", "naturalness"),
        ("mixtral", "scale5", "on_topic"),
    ]
    assert info.value.groups[2]["first_error"] == "timed out"


# --------------------------------------------------------------------------- preflight


class Checked(Scripted):
    """A Scripted teacher with a preflight that logs itself in ``events`` and raises ``error`` if given."""

    def __init__(self, name, script, events, error=None):
        super().__init__(name, script)
        self.events = events
        self.error = error
        self.preflights = 0

    async def apreflight(self):
        self.preflights += 1
        self.events.append(("preflight", self.teacher.name))
        await asyncio.sleep(0.01)
        if self.error is not None:
            raise self.error

    async def acomplete(self, messages, request=None):
        self.events.append(("request", self.teacher.name))
        return await super().acomplete(messages, request)


def test_every_teacher_is_preflighted_once_before_the_first_request(tmp_path):
    events = []
    a, b = Checked("a", good(), events), Checked("b", good(), events)
    ann = Annotator([a, b], ResponseCache(tmp_path / "c.sqlite"))
    run(ann, convs(3))
    assert a.preflights == b.preflights == 1 and ann.preflighted == {"a", "b"}
    assert events[:2] == [("preflight", "a"), ("preflight", "b")]
    assert events.count(("request", "a")) == events.count(("request", "b")) == 12


def test_a_failing_preflight_stops_the_run_before_any_request_and_is_not_a_rating(tmp_path):
    from explainft.annotate.base import PreflightError

    events = []
    a = Checked("a", good(), events)
    b = Checked("b", good(), events, error=PreflightError("teacher 'b': $B_KEY is unset"))
    with pytest.raises(PreflightError) as info:
        run(Annotator([a, b], ResponseCache(tmp_path / "c.sqlite")))
    assert str(info.value) == "teacher 'b': $B_KEY is unset"
    assert a.calls == [] and b.calls == [] and ("request", "a") not in events
    # several teachers failing: one error listing each, in params order
    c = Checked("c", good(), [], error=PreflightError("teacher 'c': connection refused"))
    b2 = Checked("b", good(), [], error=PreflightError("teacher 'b': $B_KEY is unset"))
    with pytest.raises(PreflightError) as info:
        run(Annotator([Checked("a", good(), []), b2, c], ResponseCache(tmp_path / "d.sqlite")))
    assert str(info.value) == (
        "2 teachers failed their preflight check:\n  teacher 'b': $B_KEY is unset\n  teacher 'c': connection refused"
    )


def test_a_fully_cached_rerun_needs_no_preflight(tmp_path):
    from explainft.annotate.base import PreflightError

    cache_path = tmp_path / "c.sqlite"
    first = run(Annotator([Scripted("a", good(3))], ResponseCache(cache_path)))
    offline = Checked("a", lambda m, r, n: pytest.fail("sent"), [], error=PreflightError("no credentials"))
    ann = Annotator([offline], ResponseCache(cache_path))
    assert [r.to_dict() for r in run(ann)] == [r.to_dict() for r in first]
    assert offline.preflights == 0 and ann.stats.cache_hits == 12
    # one uncached item is enough to need the teacher, and its preflight fails
    with pytest.raises(PreflightError, match="no credentials"):
        run(Annotator([offline], ResponseCache(cache_path)), convs(4))
    assert offline.preflights == 1 and offline.calls == []


def test_a_parse_retry_that_misses_the_cache_preflights_lazily(tmp_path):
    from explainft.annotate.base import PreflightError

    cache_path = tmp_path / "c.sqlite"
    run(
        Annotator([Scripted("a", lambda m, r, n: "no score")], ResponseCache(cache_path), max_parse_retries=0), convs(1)
    )
    # the first attempts are cached; the retries are not
    broken = Checked("a", good(), [], error=PreflightError("teacher 'a': server down"))
    with pytest.raises(PreflightError, match="server down"):
        run(Annotator([broken], ResponseCache(cache_path), max_parse_retries=1), convs(1))
    assert broken.preflights == 1 and broken.calls == []
    healthy = Checked("a", good(2), [])
    ratings = run(Annotator([healthy], ResponseCache(cache_path), max_parse_retries=1), convs(1))
    assert healthy.preflights == 1 and len(healthy.calls) == 4 and all(r.raw_score == 2 for r in ratings)


def test_batch_backends_are_preflighted_before_the_first_batch(tmp_path):
    from explainft.annotate.base import PreflightError

    class CheckedBatchy(Batchy):
        async def apreflight(self):
            raise PreflightError("teacher 'local': model folder missing")

    b = CheckedBatchy()
    with pytest.raises(PreflightError, match="model folder missing"):
        run(Annotator([b], ResponseCache(tmp_path / "c.sqlite")), convs(3))
    assert b.batches == []
