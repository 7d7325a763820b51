"""Merge: score methods on hand-computed values, tie rules, drops and fallbacks counted, LLM calls bounded."""

from __future__ import annotations

import asyncio
import json
import math
import random
import types

import pytest

from explainft.annotate.base import Backend, BackendError, TeacherConfig
from explainft.errors import ConfigError, RecordError
from explainft.merge import (
    ReplyError,
    dedupe_sentences,
    judge_messages,
    merge_ratings,
    most_frequent_label,
    normalise,
    parse_judge_reply,
    parse_summary_reply,
    rating_order_key,
    summary_messages,
    to_label,
)
from explainft.records import Item, Rating

ORDER = ["t1", "t2", "t3"]


def R(
    id="c/1",
    dim="naturalness",
    teacher="t1",
    prompt="scale5",
    raw=3,
    scale=None,
    status="ok",
    assessment=None,
    confidence=None,
):
    scale = scale if scale is not None else (4 if prompt.startswith("scale4") else 5)
    return Rating(
        id=id,
        dimension=dim,
        teacher=teacher,
        prompt=prompt,
        scale=scale,
        raw_score=raw if status == "ok" else None,
        assessment=f"{teacher}/{prompt} says {raw}." if assessment is None else assessment,
        confidence=f"{teacher}/{prompt} is sure." if confidence is None else confidence,
        status=status,
        error=None if status == "ok" else "could not parse",
    )


def one(ratings, **kw):
    kw.setdefault("order", ORDER)
    items, stats = merge_ratings(ratings, **kw)
    assert len(items) == 1, items
    return items[0], stats


# --------------------------------------------------------------------------- scales


@pytest.mark.parametrize(
    "raw, scale, expected",
    [(1, 4, 0.0), (2, 4, 1 / 3), (3, 4, 2 / 3), (4, 4, 1.0), (1, 5, 0.0), (2, 5, 0.25), (4, 5, 0.75), (5, 5, 1.0)],
)
def test_normalise(raw, scale, expected):
    assert normalise(raw, scale) == pytest.approx(expected)


@pytest.mark.parametrize("raw, scale", [(0, 4), (5, 4), (6, 5), (True, 5), (2.0, 5)])
def test_normalise_rejects_scores_off_the_scale(raw, scale):
    with pytest.raises(ValueError):
        normalise(raw, scale)


@pytest.mark.parametrize(
    "score, label",
    [
        (0.0, 1),
        (0.124, 1),
        (0.125, 2),
        (0.25, 2),
        (0.374, 2),
        (0.375, 3),
        (0.5, 3),
        (0.625, 4),
        (0.75, 4),
        (0.875, 5),
        (1.0, 5),
        (1 / 3, 2),
        (2 / 3, 4),  # a 1-4 rating of 2 and of 3
        (math.nextafter(0.375, 0.0), 3),  # a half that floating point put a hair below: still up
        (math.nextafter(0.625, 0.0), 4),
    ],
)
def test_to_label_rounds_half_up(score, label):
    assert to_label(score) == label


def test_to_label_is_not_bankers_rounding():
    # Python's round() gives round(0.5) == 0 and round(2.5) == 2; the label rule does not
    assert [to_label(s) for s in (0.125, 0.375, 0.625, 0.875)] == [2, 3, 4, 5]


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf")])
def test_to_label_rejects_scores_outside_the_unit_interval(bad):
    with pytest.raises(ValueError):
        to_label(bad)


# --------------------------------------------------------------------------- average


def test_average_over_mixed_four_and_five_point_scales():
    item, _ = one(
        [
            R(teacher="t1", prompt="scale4", raw=3),  # 2/3
            R(teacher="t1", prompt="scale5", raw=4),  # 0.75
            R(teacher="t2", prompt="scale4", raw=2),  # 1/3
            R(teacher="t2", prompt="scale5", raw=5),
        ]
    )  # 1.0
    # (2/3 + 0.75 + 1/3 + 1) / 4 = 2.75 / 4 = 0.6875; 4 * 0.6875 = 2.75 -> 3 -> label 4
    assert item.score == pytest.approx(0.6875)
    assert item.label == 4 and item.n_valid == 4


def test_average_on_an_exact_half_rounds_the_label_up():
    item, _ = one([R(teacher="t1", raw=2), R(teacher="t2", raw=3)])  # (0.25 + 0.5) / 2 = 0.375
    assert item.score == pytest.approx(0.375) and item.label == 3


def test_average_does_not_depend_on_input_order():
    ratings = [
        R(teacher=t, prompt=p, raw=r)
        for t, p, r in [
            ("t1", "scale4", 2),
            ("t1", "scale5", 3),
            ("t2", "scale4_examples", 4),
            ("t3", "scale5_examples", 5),
            ("t2", "scale5", 1),
            ("t3", "scale4", 3),
        ]
    ]
    first, _ = merge_ratings(ratings, order=ORDER)
    for seed in range(5):
        shuffled = ratings[:]
        random.Random(seed).shuffle(shuffled)
        again, _ = merge_ratings(shuffled, order=ORDER)
        assert again == first  # bit-identical: summed in the rating order, not the input order


# --------------------------------------------------------------------------- most frequent


def test_most_frequent_clear_mode():
    item, _ = one(
        [R(teacher="t1", raw=4), R(teacher="t2", raw=4), R(teacher="t3", raw=2)], score_method="most_frequent"
    )
    assert (item.label, item.score) == (4, 0.75)


def test_most_frequent_maps_each_rating_through_its_own_scale():
    # 1-4 raw 3 = 2/3 -> label 4; 1-5 raw 4 = 0.75 -> label 4; 1-5 raw 3 = 0.5 -> label 3
    item, _ = one(
        [
            R(teacher="t1", prompt="scale4", raw=3),
            R(teacher="t2", prompt="scale5", raw=4),
            R(teacher="t3", prompt="scale5", raw=3),
        ],
        score_method="most_frequent",
    )
    assert item.label == 4


def test_most_frequent_tie_goes_to_the_label_closest_to_the_mean():
    # labels 2, 2, 5, 5, 4; mean = (0.25 + 0.25 + 1 + 1 + 0.75) / 5 = 0.65; |0.25-0.65| = 0.4 > |1-0.65| = 0.35
    ratings = [
        R(teacher="t1", raw=2),
        R(teacher="t1", prompt="scale5_examples", raw=2),
        R(teacher="t2", raw=5),
        R(teacher="t2", prompt="scale5_examples", raw=5),
        R(teacher="t3", raw=4),
    ]
    item, _ = one(ratings, score_method="most_frequent")
    assert (item.label, item.score) == (5, 1.0)


def test_most_frequent_tie_equally_close_goes_to_the_lower_label():
    # labels 4 (1-4 raw 3), 4 (1-5 raw 4), 2 (1-4 raw 2), 2 (1-5 raw 2); mean = (2/3 + .75 + 1/3 + .25) / 4 = 0.5
    # label 2 (0.25) and label 4 (0.75) are both 0.25 away -> the lower, 2
    ratings = [
        R(teacher="t1", prompt="scale4", raw=3),
        R(teacher="t1", prompt="scale5", raw=4),
        R(teacher="t2", prompt="scale4", raw=2),
        R(teacher="t2", prompt="scale5", raw=2),
    ]
    assert most_frequent_label(ratings) == 2
    item, _ = one(ratings, score_method="most_frequent")
    assert (item.label, item.score) == (2, 0.25)


# --------------------------------------------------------------------------- validity, drops, stats


def test_unparsable_and_failed_ratings_are_excluded_and_counted():
    ratings = [
        R(teacher="t1", raw=5),
        R(teacher="t2", status="unparsable"),
        R(teacher="t3", status="failed"),
        R(teacher="t1", prompt="scale4", status="unparsable"),
    ]
    item, stats = one(ratings)
    assert (item.score, item.label, item.n_valid) == (1.0, 5, 1)
    assert stats["ratings"] == {"naturalness": {"ok": 1, "unparsable": 2, "failed": 1}}
    assert stats["n_ratings"] == 4
    assert stats["share_unparsable"] == 0.5 and stats["share_failed"] == 0.25


def test_min_valid_drops_are_counted_per_dimension():
    ratings = [
        # c/1 naturalness: 2 valid -> kept
        R("c/1", raw=4),
        R("c/1", teacher="t2", raw=2),
        # c/1 on_topic: 1 valid, 2 unparsable -> dropped
        R("c/1", "on_topic", raw=5),
        R("c/1", "on_topic", teacher="t2", status="unparsable"),
        R("c/1", "on_topic", teacher="t3", status="unparsable"),
        # c/2 naturalness: all failed -> dropped
        R("c/2", status="failed"),
        R("c/2", teacher="t2", status="failed"),
        # c/2 on_topic: 3 valid -> kept
        R("c/2", "on_topic", raw=1),
        R("c/2", "on_topic", teacher="t2", raw=1),
        R("c/2", "on_topic", teacher="t3", raw=2),
    ]
    items, stats = merge_ratings(ratings, min_valid=2, order=ORDER)
    assert [(i.id, i.dimension) for i in items] == [("c/1", "naturalness"), ("c/2", "on_topic")]
    assert stats["dropped_min_valid"] == {"naturalness": 1, "on_topic": 1}
    assert stats["n_items"] == 2 and stats["n_items_by_dimension"] == {"naturalness": 1, "on_topic": 1}
    assert stats["n_groups"] == {"naturalness": 2, "on_topic": 2}
    assert stats["mean_n_valid"] == {"naturalness": 2.0, "on_topic": 3.0}
    assert stats["mean_n_valid_all"] == 2.5
    # c/1 naturalness (0.75 + 0.25) / 2 = 0.5 -> 3; c/2 on_topic (0 + 0 + 0.25) / 3 = 1/12 -> 4/12 = 0.33 -> 1
    assert stats["label_distribution"] == {
        "naturalness": {"1": 0, "2": 0, "3": 1, "4": 0, "5": 0},
        "on_topic": {"1": 1, "2": 0, "3": 0, "4": 0, "5": 0},
    }
    assert stats["llm_fallbacks"] == {
        k: {"naturalness": 0, "on_topic": 0} for k in ("judge", "summary_assessment", "summary_confidence")
    }
    json.dumps(stats, allow_nan=False)  # a valid metrics document


def test_items_come_out_sorted_by_id_then_dimension_whatever_the_input_order():
    ratings = [R(i, d, raw=3) for i in ("b", "a", "c") for d in ("on_topic", "naturalness", "comprehensiveness")]
    random.Random(1).shuffle(ratings)
    items, _ = merge_ratings(ratings)
    keys = [(i.id, i.dimension) for i in items]
    assert keys == sorted(keys) and len(keys) == 9
    assert all(isinstance(i, Item) for i in items)


def test_empty_input_gives_no_items_and_zero_stats():
    items, stats = merge_ratings([])
    assert items == [] and stats["n_items"] == 0 and stats["share_unparsable"] == 0.0


def test_a_duplicate_rating_is_an_error_naming_the_record():
    with pytest.raises(RecordError, match="record c/1.*second rating by teacher 't1'") as e:
        merge_ratings([R(raw=3), R(raw=4)])
    assert e.value.reason == "duplicate_rating"


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"score_method": "median"}, "merge.score"),
        ({"explanation_method": "abstractive"}, "merge.explanation"),
        ({"score_method": "llm"}, "merge.judge"),
        ({"explanation_method": "llm"}, "merge.summariser"),
        ({"min_valid": 0}, "merge.min_valid"),
        ({"min_valid": True}, "merge.min_valid"),
        ({"min_valid": 1.5}, "merge.min_valid"),
        ({"order": "t1,t2"}, "merge.order"),
    ],
)
def test_bad_parameters_name_their_key(kw, key):
    with pytest.raises(ConfigError) as e:
        merge_ratings([R(raw=3)], **kw)
    assert e.value.key == key


# --------------------------------------------------------------------------- order and extractive explanations


def test_rating_order_teachers_then_prompts_then_unlisted():
    ratings = [
        R(teacher=t, prompt=p)
        for t in ("zed", "t2", "t1", "alpha")
        for p in ("scale5_examples", "scale4", "scale5", "scale4_examples")
    ]
    key = rating_order_key(["t2", "t1"])
    got = [f"{r.teacher}/{r.prompt}" for r in sorted(ratings, key=key)]
    prompts = ["scale4", "scale4_examples", "scale5", "scale5_examples"]
    assert got == [f"{t}/{p}" for t in ("t2", "t1", "alpha", "zed") for p in prompts]
    # a teacher/prompt pair entry places that one rating
    key = rating_order_key(["t1/scale5", "t1"])
    assert [f"{r.teacher}/{r.prompt}" for r in sorted(ratings, key=key)][:2] == ["t1/scale5", "t1/scale4"]


def test_extractive_takes_the_rating_closest_to_the_merged_score():
    # mean = (0 + 0.5 + 0.75 + 1) / 4 = 0.5625; closest: 0.5 (t2/scale5)
    ratings = [
        R(teacher="t1", raw=1),
        R(teacher="t2", raw=3),
        R(teacher="t3", raw=4),
        R(teacher="t3", prompt="scale4", raw=4),
    ]
    item, _ = one(ratings)
    assert item.score == pytest.approx(0.5625)
    assert item.assessment == "t2/scale5 says 3." and item.confidence == "t2/scale5 is sure."


def test_extractive_ties_go_to_the_earlier_rating_in_the_order():
    # mean = (0.25 + 0.75) / 2 = 0.5; both 0.25 away -> the first in order
    ratings = [R(teacher="t2", raw=4), R(teacher="t1", raw=2)]
    assert one(ratings, order=["t1", "t2"])[0].assessment == "t1/scale5 says 2."
    assert one(ratings, order=["t2", "t1"])[0].assessment == "t2/scale5 says 4."
    # same prompt order inside a teacher: scale4 before scale5 (1-4 raw 2 = 1/3 vs 1-5 raw 3 = 0.5 around 5/12)
    ratings = [R(teacher="t1", prompt="scale5", raw=3), R(teacher="t1", prompt="scale4", raw=2)]
    item, _ = one(ratings)
    assert item.score == pytest.approx(5 / 12)
    assert item.assessment == "t1/scale4 says 2."


def test_extractive_skips_empty_texts_and_chooses_confidence_separately():
    ratings = [
        R(teacher="t1", raw=3, assessment="  ", confidence="Fairly sure."),
        R(teacher="t2", raw=3, assessment="Reads naturally.", confidence=""),
        R(teacher="t3", raw=5, assessment="Great.", confidence="Certain."),
    ]
    item, _ = one(ratings, score_method="most_frequent")  # label 3, score 0.5
    assert (item.assessment, item.confidence) == ("Reads naturally.", "Fairly sure.")
    none_, _ = one([R(raw=3, assessment="", confidence="")])
    assert (none_.assessment, none_.confidence) == ("", "")


def test_dedupe_sentences_keeps_the_first_of_repeats_only_when_asked():
    text = "Sounds robotic. It repeats itself!  sounds   ROBOTIC. Overall fine?"
    assert dedupe_sentences(text) == "Sounds robotic. It repeats itself! Overall fine?"
    r = [R(raw=3, assessment=text)]
    assert one(r)[0].assessment == text
    assert one(r, dedupe_sentences=True)[0].assessment == "Sounds robotic. It repeats itself! Overall fine?"


# --------------------------------------------------------------------------- LLM judge and summariser


class FakeBackend(Backend):
    """Records what it was sent; replies with ``reply(messages)`` (a str, or an exception to raise)."""

    kind = "fake"

    def __init__(self, reply, concurrency=1):
        super().__init__(TeacherConfig(name="fake", backend="heuristic", model="fake-judge"))
        self.concurrency = concurrency
        self.reply = reply
        self.sent: list[tuple[list[dict], object]] = []
        self.in_flight = self.max_in_flight = 0

    async def acomplete(self, messages, request=None):
        self.sent.append((messages, request))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.002)
            out = self.reply(messages)
            if isinstance(out, Exception):
                raise out
            return out
        finally:
            self.in_flight -= 1


class _FakePrompt:
    def __init__(self, msgs):
        self._msgs = msgs

    def messages(self):
        return self._msgs


@pytest.fixture
def fake_prompts(monkeypatch):
    """Stand-ins for the judge and summary prompts of explainft.annotate.prompts that show what the merge passes."""
    mod = types.ModuleType("explainft.annotate.prompts")
    mod.calls = []

    def build_judge_prompt(dimension, ratings):
        mod.calls.append(("judge", dimension, list(ratings)))
        payload = {
            "id": ratings[0].id,
            "ratings": [[r.teacher, r.prompt, r.scale, r.raw_score, r.assessment] for r in ratings],
        }
        return [{"role": "system", "content": f"judge {dimension}"}, {"role": "user", "content": json.dumps(payload)}]

    def build_summary_prompt(dimension, texts, kind):
        mod.calls.append(("summary", dimension, list(texts), kind))
        return _FakePrompt([{"role": "user", "content": json.dumps({"kind": kind, "texts": texts})}])

    mod.build_judge_prompt = build_judge_prompt
    mod.build_summary_prompt = build_summary_prompt
    import explainft.merge

    monkeypatch.setattr(explainft.merge, "build_judge_prompt", build_judge_prompt)
    monkeypatch.setattr(explainft.merge, "build_summary_prompt", build_summary_prompt)
    return mod


def payload(messages):
    return json.loads(messages[-1]["content"])


def test_llm_judge_sees_the_valid_ratings_in_order_and_its_score_is_the_label(fake_prompts):
    judge = FakeBackend(lambda m: '{"score": 2, "reason": "stilted"}')
    ratings = [R(teacher="t2", raw=5), R(teacher="t1", prompt="scale4", raw=4), R(teacher="t3", status="unparsable")]
    item, stats = one(ratings, score_method="llm", judge=judge)
    assert (item.label, item.score) == (2, 0.25)
    ((messages, request),) = judge.sent
    assert request is None  # a free-form call, not a rating request
    assert messages[0] == {"role": "system", "content": "judge naturalness"}
    assert payload(messages)["ratings"] == [
        ["t1", "scale4", 4, 4, "t1/scale4 says 4."],
        ["t2", "scale5", 5, 5, "t2/scale5 says 5."],
    ]
    assert stats["llm_calls"]["judge"] == 1 and stats["llm_fallbacks"]["judge"] == {"naturalness": 0}
    # extractive explanation follows the judge's score: both ratings are 1.0, 0.75 away -> the first in order
    assert item.assessment == "t1/scale4 says 4."


def test_llm_judge_bad_reply_or_backend_error_falls_back_to_average_and_is_counted(fake_prompts):
    def reply(messages):
        cid = payload(messages)["id"]
        return {
            "c/1": '```json\n{"score": 4, "reason": "ok"}\n```',  # fenced: not strict JSON
            "c/2": '{"score": 9, "reason": "off the scale"}',
            "c/3": BackendError("HTTP 503 after 5 retries"),
            "c/4": '{"score": 3, "reason": "fine"}',
        }[cid]

    judge = FakeBackend(reply, concurrency=3)
    ratings = [R(c, teacher=t, raw=r) for c in ("c/1", "c/2", "c/3", "c/4") for t, r in (("t1", 5), ("t2", 4))]
    items, stats = merge_ratings(ratings, score_method="llm", judge=judge, order=ORDER)
    by_id = {i.id: i for i in items}
    for cid in ("c/1", "c/2", "c/3"):  # average of 1.0 and 0.75
        assert (by_id[cid].score, by_id[cid].label) == (0.875, 5)
    assert (by_id["c/4"].score, by_id["c/4"].label) == (0.5, 3)
    assert stats["llm_fallbacks"]["judge"] == {"naturalness": 3}
    assert stats["llm_fallback_reasons"]["judge"] == {"backend_error": 1, "bad_json": 1, "bad_score": 1}
    assert stats["llm_calls"]["judge"] == 4


def test_llm_calls_run_concurrently_within_the_backend_bound(fake_prompts):
    judge = FakeBackend(lambda m: '{"score": 3, "reason": "x"}', concurrency=3)
    ratings = [R(f"c/{i:02d}", teacher=t, raw=3) for i in range(12) for t in ORDER]
    items, stats = merge_ratings(
        ratings, score_method="llm", judge=judge, explanation_method="llm", summariser=judge, order=ORDER
    )
    assert len(items) == 12 and stats["llm_calls"] == {"judge": 12, "summary_assessment": 12, "summary_confidence": 12}
    # judge and summariser are the same backend: one shared bound of 3
    assert 1 < judge.max_in_flight <= 3


def test_llm_summary_gets_the_nonempty_texts_and_failures_fall_back_to_extractive(fake_prompts):
    def reply(messages):
        p = payload(messages)
        if p["kind"] == "assessment":
            return json.dumps({"text": " Merged: " + " | ".join(p["texts"]) + " "})
        return '{"text": ""}'  # empty text: a failure for confidence

    summ = FakeBackend(reply)
    ratings = [
        R(teacher="t2", raw=4, assessment="Second."),
        R(teacher="t1", raw=4, assessment="First."),
        R(teacher="t3", raw=4, assessment=" "),
        R(teacher="t3", prompt="scale4", status="failed"),
    ]
    item, stats = one(ratings, explanation_method="llm", summariser=summ)
    assert item.assessment == "Merged: First. | Second."
    assert item.confidence == "t1/scale5 is sure."  # extractive fallback: closest, first in order
    summaries = [c for c in fake_prompts.calls if c[0] == "summary"]
    assert summaries[0] == ("summary", "naturalness", ["First.", "Second."], "assessment")
    assert summaries[1][3] == "confidence" and len(summaries[1][2]) == 3
    assert stats["llm_fallbacks"]["summary_assessment"] == {"naturalness": 0}
    assert stats["llm_fallbacks"]["summary_confidence"] == {"naturalness": 1}
    assert stats["llm_fallback_reasons"]["summary_confidence"] == {"bad_text": 1}


def test_llm_summary_backend_error_is_counted_per_kind(fake_prompts):
    summ = FakeBackend(lambda m: BackendError("timeout"))
    item, stats = one([R(raw=4)], explanation_method="llm", summariser=summ)
    assert item.assessment == "t1/scale5 says 4."
    assert stats["llm_fallbacks"]["summary_assessment"] == {"naturalness": 1}
    assert stats["llm_fallbacks"]["summary_confidence"] == {"naturalness": 1}


@pytest.mark.parametrize(
    "reply, expected",
    [
        ('{"score": 4, "reason": "natural"}', (4, "natural")),
        ('  \n{"reason": "", "score": 1}\n', (1, "")),
    ],
)
def test_parse_judge_reply_accepts_exactly_the_contract(reply, expected):
    assert parse_judge_reply(reply) == expected


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("Score: 4", "bad_json"),
        ('```json\n{"score": 4, "reason": "x"}\n```', "bad_json"),
        ('{"score": 4, "reason": "x"} and more', "bad_json"),
        ("[4]", "not_object"),
        ('{"score": 4}', "missing_key"),
        ('{"reason": "x"}', "missing_key"),
        ('{"score": 4, "reason": "x", "confidence": 0.9}', "unknown_key"),
        ('{"score": "4", "reason": "x"}', "bad_score"),
        ('{"score": 4.0, "reason": "x"}', "bad_score"),
        ('{"score": true, "reason": "x"}', "bad_score"),
        ('{"score": 0, "reason": "x"}', "bad_score"),
        ('{"score": 6, "reason": "x"}', "bad_score"),
        ('{"score": 3, "reason": null}', "bad_reason"),
    ],
)
def test_parse_judge_reply_rejects_everything_else(reply, reason):
    with pytest.raises(ReplyError) as e:
        parse_judge_reply(reply)
    assert e.value.reason == reason


@pytest.mark.parametrize(
    "reply, reason",
    [
        ('{"text": "  "}', "bad_text"),
        ('{"text": 3}', "bad_text"),
        ('{"summary": "x"}', "missing_key"),
        ("plain prose", "bad_json"),
    ],
)
def test_parse_summary_reply_rejects(reply, reason):
    with pytest.raises(ReplyError) as e:
        parse_summary_reply(reply)
    assert e.value.reason == reason
    assert parse_summary_reply('{"text": " One text. "}') == "One text."


def test_judge_messages_with_the_real_prompts_module_if_present():
    prompts = pytest.importorskip("explainft.annotate.prompts")
    if not callable(getattr(prompts, "build_judge_prompt", None)):
        pytest.skip("explainft.annotate.prompts.build_judge_prompt not written yet")
    msgs = judge_messages("naturalness", [R(teacher="t1", raw=4, assessment="Sounds human."), R(teacher="t2", raw=2)])
    assert msgs and all(set(m) >= {"role", "content"} for m in msgs)
    text = "\n".join(m["content"] for m in msgs)
    assert "Sounds human." in text
    if callable(getattr(prompts, "build_summary_prompt", None)):
        msgs = summary_messages("on_topic", ["Stays on the question.", "Answers it."], "confidence")
        assert "Answers it." in "\n".join(m["content"] for m in msgs)


def test_llm_judge_end_to_end_with_the_real_prompts_module_if_present():
    prompts = pytest.importorskip("explainft.annotate.prompts")
    if not callable(getattr(prompts, "build_judge_prompt", None)):
        pytest.skip("explainft.annotate.prompts.build_judge_prompt not written yet")
    judge = FakeBackend(lambda m: '{"score": 4, "reason": "mostly natural"}')
    item, stats = one([R(teacher="t1", raw=2), R(teacher="t2", raw=5)], score_method="llm", judge=judge)
    assert (item.label, item.score) == (4, 0.75) and stats["llm_fallbacks"]["judge"] == {"naturalness": 0}
    assert len(judge.sent) == 1
