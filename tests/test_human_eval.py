"""Agreement with people: the ``human`` section, the design part, the raters and their agreement, the prefix cache,
the report's section and ``explainft agree`` (explainft.human_eval, explainft.stages.human_eval / agree,
explainft.report.human)."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import FIXTURES, ROOT

from explainft.cli import main as cli
from explainft.config import human_config, load_params
from explainft.config.human import HumanConfig
from explainft.errors import ConfigError
from explainft.fsutil import write_json
from explainft.human import Annotation, HumanSet, PreferencePair, RatedResponse, Scale, load_human_set
from explainft.human_eval import (
    agreement,
    check_map,
    design_part,
    feature_scores,
    features,
    item_predictions,
    prepare,
    teacher_predictions,
)
from explainft.records import DIMENSIONS, Conversation, Item, Rating, Turn
from explainft.report.human import human_section
from explainft.scoring import ScoringError, example_for, score_examples
from explainft.stages import agree as agree_body
from explainft.stages.check import check_profile
from explainft.stages.human_eval import PrefixCache, model_scores, tokenizer_key

HELPSTEER = FIXTURES / "human" / "helpsteer"
ARENA = FIXTURES / "human" / "arena_human_preference" / "jsonl"
PARAMS = load_params(ROOT / "params.yaml")


# --------------------------------------------------------------------------- builders


def conv(cid: str, response: str, *, group: str | None = None, user: str = "Where is the old bridge?", context=None):
    return Conversation(
        id=cid, dataset="s", turns=(Turn("user", user), Turn("assistant", response)), group=group, context=context
    )


def rated(cid: str, group: str, **qualities: tuple[tuple[float, ...], Scale]) -> RatedResponse:
    return RatedResponse(
        conv(cid, f"Answer number {cid} about the bridge.", group=group),
        {q: Annotation(values, scale) for q, (values, scale) in qualities.items()},
    )


def pair(pid: str, group: str, winner: str) -> PreferencePair:
    sides = {s: conv(f"{pid}/{s}", f"Side {s} of {pid}.", group=group) for s in "ab"}
    return PreferencePair(pid, group, sides["a"], sides["b"], winner)


def groups_where(in_design: bool, n: int, share: float = 0.3) -> list[str]:
    """``n`` group names whose design_part at ``share`` is ``in_design``."""
    out, i = [], 0
    while len(out) < n:
        g = f"s/p{hashlib.sha256(str(i).encode()).hexdigest()[:12]}"
        if design_part(g, share) == in_design:
            out.append(g)
        i += 1
    return out


S04, HALF = Scale(0, 4), Scale(0.5, 3.5)
# (annotators' values on 0-4, the one value on 0.5-3.5) per response; groups of two
RATED = [((0, 0), 0.5), ((0, 2), 1.5), ((2, 2), 2.5), ((2, 4), 3.5), ((4, 4), 3.0), ((1, 3), 1.0)]
MEANS = [0.0, 1.0, 2.0, 3.0, 4.0, 2.0]


def rating_set(name: str = "s") -> HumanSet:
    ratings = [
        rated(f"{name}/{i}", f"{name}/g{i // 2}", natural=(v, S04), half=((h,), HALF)) for i, (v, h) in enumerate(RATED)
    ]
    return HumanSet(name, "gold", "ratings", ratings=ratings, qualities={"natural": S04, "half": HALF})


def truth_rater(hs: HumanSet) -> dict:
    """Predictions equal to the people's means on naturalness (natural) and on_topic (half)."""
    out = {}
    for u in hs.ratings:
        out[(u.id, "naturalness")] = u.qualities["natural"].normalised
        out[(u.id, "on_topic")] = u.qualities["half"].normalised
    return out


WINNERS = ["a", "b", "a", "tie"]


def preference_set() -> HumanSet:
    pairs = [pair(f"p/{i}", f"p/g{i // 2}", w) for i, w in enumerate(WINNERS)]
    return HumanSet("p", "hh_rlhf_pairs", "preferences", pairs=pairs, qualities={"preference": Scale(0, 1)})


# a vs b: 0.8/0.2 (a, right), 0.5/0.5 (tie on a decided battle), 0.1/0.9 (b, wrong), 0.4/0.4 (tie on a tie)
PREF_SCORES = [(0.8, 0.2), (0.5, 0.5), (0.1, 0.9), (0.4, 0.4)]


def pref_rater(dims=("naturalness",)) -> dict:
    return {(f"p/{i}/{s}", d): v for i, ab in enumerate(PREF_SCORES) for s, v in zip("ab", ab) for d in dims}


# --------------------------------------------------------------------------- the human section


def human(change=None) -> dict:
    p = {"human": copy.deepcopy(PARAMS["human"])}
    if change:
        change(p["human"])
    return p


def test_the_default_section_parses_to_its_values():
    hc = human_config(PARAMS, tuple(PARAMS["annotate"]["dimensions"]))
    assert (hc.bootstrap, hc.ci, hc.seed) == (1000, 0.95, 0)
    assert list(hc.sets) == ["helpsteer", "arena_human_preference"]
    hs = hc.set("helpsteer")
    assert (hs.name, hs.format, hs.on_error, hs.options, hs.design_share) == (
        "helpsteer",
        "helpsteer",
        "raise",
        {},
        0.3,
    )
    assert hs.fetch == {"from": "local", "path": "human/helpsteer"}
    assert hs.map == {"naturalness": "coherence", "comprehensiveness": "helpfulness", "on_topic": "correctness"}
    assert hs.key("map") == "human.sets.helpsteer.map"
    assert hc.set("arena_human_preference").map == dict.fromkeys(DIMENSIONS, "preference")
    assert human_config({}) == HumanConfig()  # absent: no sets
    assert human_config(human(lambda h: h.update(bootstrap=0))).bootstrap == 0  # 0: no intervals


def _set(h: dict) -> dict:
    return h["sets"]["helpsteer"]


BAD = [
    (lambda h: h.update(extra=1), "human.extra", "unknown key"),
    (lambda h: _set(h).update(colour="red"), "human.sets.helpsteer.colour", "unknown key"),
    (lambda h: _set(h).pop("format"), "human.sets.helpsteer.format", "required key is missing"),
    (lambda h: _set(h).pop("fetch"), "human.sets.helpsteer.fetch", "required key is missing"),
    (lambda h: _set(h).pop("map"), "human.sets.helpsteer.map", "required key is missing"),
    (lambda h: _set(h)["map"].update(fluency="coherence"), "human.sets.helpsteer.map.fluency", "not a rated dimension"),
    (lambda h: _set(h).update(map={}), "human.sets.helpsteer.map", "at least one dimension"),
    (lambda h: _set(h).update(on_error="ignore"), "human.sets.helpsteer.on_error", "'ignore'"),
    (lambda h: _set(h).update(design_share=1), "human.sets.helpsteer.design_share", "[0, 1), got 1"),
    (lambda h: _set(h).update(design_share=-0.1), "human.sets.helpsteer.design_share", "got -0.1"),
    (lambda h: _set(h).update(design_share="x"), "human.sets.helpsteer.design_share", "got 'x'"),
    (lambda h: h.update(bootstrap=50), "human.bootstrap", "at least 100 resamples, got 50"),
    (lambda h: h.update(ci=1.0), "human.ci", "[0.5, 1)"),
    (lambda h: h["sets"].update({"Bad Name": h["sets"].pop("helpsteer")}), "human.sets.Bad Name", "lower-case"),
]


@pytest.mark.parametrize("change, key, words", BAD, ids=[f"{k}:{w}" for _, k, w in BAD])
def test_bad_input_names_its_key(change, key, words):
    with pytest.raises(ConfigError) as ei:
        human_config(human(change), DIMENSIONS)
    assert ei.value.key == key and words in ei.value.message


def test_a_map_is_checked_against_the_dimensions_only_when_given():
    p = human(lambda h: _set(h)["map"].update(fluency="coherence"))
    assert human_config(p).set("helpsteer").map["fluency"] == "coherence"


def test_an_unknown_set_names_the_sets_there_are():
    with pytest.raises(ConfigError) as ei:
        human_config(PARAMS).set("nope")
    assert ei.value.key == "human.sets"
    assert ei.value.message == "no human-rated set named 'nope'; this profile has: helpsteer, arena_human_preference"


# --------------------------------------------------------------------------- explainft check


def profile(change) -> dict:
    p = copy.deepcopy(PARAMS)
    change(p["human"]["sets"])
    return p


def test_check_passes_on_the_default_and_lists_the_sets():
    assert check_profile(copy.deepcopy(PARAMS))["human"] == ["helpsteer", "arena_human_preference"]


@pytest.mark.parametrize(
    "change, key, words",
    [
        (
            lambda s: s["helpsteer"]["map"].update(naturalness="fluency"),
            "human.sets.helpsteer.map.naturalness",
            "'fluency' is not a quality of format helpsteer",
        ),
        (
            lambda s: s["helpsteer"].update(format="helpsteer3"),
            "human.sets.helpsteer.format",
            "unknown format 'helpsteer3'",
        ),
        (
            lambda s: s["arena_human_preference"].update(fetch={"from": "url"}),
            "human.sets.arena_human_preference.fetch.urls",
            "is required for from: url",
        ),
        (
            lambda s: s["helpsteer"].update(options={"files": []}),
            "human.sets.helpsteer.options.files",
            "non-empty list",
        ),
    ],
)
def test_check_names_the_bad_key_of_a_set(change, key, words):
    with pytest.raises(ConfigError) as ei:
        check_profile(profile(change))
    assert ei.value.key == key and words in ei.value.message


# --------------------------------------------------------------------------- the design part


def test_design_part_is_a_stable_share_of_groups_whatever_the_set_name():
    rng = random.Random(0)
    keys = [f"{rng.getrandbits(48):012x}" for _ in range(10_000)]
    picked = [design_part(f"a/p{k}", 0.3) for k in keys]
    assert picked == [design_part(f"a/p{k}", 0.3) for k in keys]  # deterministic
    assert picked == [design_part(f"b/p{k}", 0.3) for k in keys]  # the set's name does not matter
    assert abs(sum(picked) / len(keys) - 0.3) <= 0.02
    assert not any(design_part(f"a/p{k}", 0) for k in keys)
    # a larger share only adds groups: what was set aside at 0.3 stays set aside at 0.5
    wider = [design_part(f"a/p{k}", 0.5) for k in keys]
    assert all(w for p, w in zip(picked, wider) if p) and sum(wider) > sum(picked)


def test_prepare_keeps_the_groups_outside_the_design_part():
    inside, outside = groups_where(True, 2), groups_where(False, 1)
    units = [rated(f"s/{i}", g, natural=((1,), S04)) for i, g in enumerate(inside + outside)]
    hs = HumanSet("s", "gold", "ratings", ratings=units, qualities={"natural": S04})
    prep = prepare(hs, 0.3)
    assert (prep.kind, prep.units, prep.groups, prep.design_units) == ("ratings", [units[2]], outside, 2)
    assert prep.conversations == [units[2].conversation]
    everything = prepare(hs, 0.0)
    assert everything.units == units and everything.design_units == 0

    pairs = [pair("s/x", inside[0], "a"), pair("s/y", outside[0], "tie")]
    hp = HumanSet("s", "hh_rlhf_pairs", "preferences", pairs=pairs)
    prep = prepare(hp, 0.3)
    assert [c.id for c in prep.conversations] == ["s/y/a", "s/y/b"]  # a pair gives both sides
    assert (prep.units, prep.groups, prep.design_units) == ([pairs[1]], outside, 1)


def test_prepare_refuses_a_design_part_that_takes_everything():
    units = [rated(f"s/{i}", g, natural=((1,), S04)) for i, g in enumerate(groups_where(True, 2))]
    hs = HumanSet("s", "gold", "ratings", ratings=units, qualities={"natural": S04})
    with pytest.raises(ConfigError) as ei:
        prepare(hs, 0.3)
    assert ei.value.key == "human.sets.s"
    assert "nothing is left to measure of the set's 2 items: 2 in the design part (design_share)" in ei.value.message


def test_prepare_leaves_out_what_a_training_example_asked_and_counts_it():
    from explainft.datasets.base import prompt_group

    asked = Conversation(
        id="t", dataset="s", turns=(Turn("user", "  WHERE is the old   bridge? "), Turn("assistant", "Far."))
    )
    units = [
        RatedResponse(conv("s/0", "By the mill.", group="s/p1"), {"natural": Annotation((2,), S04)}),
        RatedResponse(conv("s/1", "No idea.", group="s/p2", user="Who built it?"), {"natural": Annotation((3,), S04)}),
    ]
    hs = HumanSet("s", "gold", "ratings", ratings=units, qualities={"natural": S04})
    # the same user turns, whatever their case and spacing, are the same question: left out and counted
    prep = prepare(hs, 0.0, trained={prompt_group(asked.turns)})
    assert prep.units == [units[1]] and prep.left_out == {"design": 0, "in_training": 1, "sampled_out": 0}
    # a pair is checked by what its prompt asked (both sides share it)
    hp = HumanSet("s", "hh_rlhf_pairs", "preferences", pairs=[pair("s/x", "s/p3", "a"), pair("s/y", "s/p4", "b")])
    with pytest.raises(ConfigError) as ei:
        prepare(hp, 0.0, trained={prompt_group(asked.turns)})
    assert "2 asking what a training or validation example asked" in ei.value.message


def test_max_items_keeps_whole_groups_by_hash_and_counts_the_rest():
    groups = [f"s/p{hashlib.sha256(str(i).encode()).hexdigest()[:12]}" for i in range(6)]
    # groups of 2, 2, 2, 1, 1, 1 responses
    units = [
        rated(f"s/{g[-4:]}-{k}", g, natural=((1,), S04)) for i, g in enumerate(groups) for k in range(2 if i < 3 else 1)
    ]
    hs = HumanSet("s", "gold", "ratings", ratings=units, qualities={"natural": S04})
    prep = prepare(hs, 0.0, max_items=4)
    kept = {u.conversation.group for u in prep.units}
    sizes = {g: sum(u.conversation.group == g for u in units) for g in groups}
    assert len(prep.units) <= 4 and prep.left_out["sampled_out"] == len(units) - len(prep.units)
    # whole groups only: every kept group has all of its responses
    assert all(sum(u.conversation.group == g for u in prep.units) == sizes[g] for g in kept)
    # stable: the same sample every time, and a larger budget keeps a superset
    assert prepare(hs, 0.0, max_items=4).units == prep.units
    assert kept <= {u.conversation.group for u in prepare(hs, 0.0, max_items=6).units}
    assert prepare(hs, 0.0, max_items=100).left_out["sampled_out"] == 0


def test_check_map_names_the_dimension_and_the_qualities_there_are():
    hs = load_human_set("helpsteer", HELPSTEER, "hs")
    check_map(hs, {"naturalness": "coherence"})
    with pytest.raises(ConfigError) as ei:
        check_map(hs, {"naturalness": "coherence", "on_topic": "fluency"})
    assert ei.value.key == "human.sets.hs.map.on_topic"
    assert ei.value.message == (
        "'fluency' is not a quality of this helpsteer set; it has: "
        "coherence, complexity, correctness, helpfulness, verbosity"
    )
    check_map(preference_set(), {"naturalness": "preference"})
    with pytest.raises(ConfigError, match="it has: preference") as ei:
        check_map(preference_set(), {"naturalness": "natural"})
    assert ei.value.key == "human.sets.p.map.naturalness"


# --------------------------------------------------------------------------- baselines


def test_features_count_words_distinct_words_and_overlap_with_the_context():
    c = conv(
        "s/1",
        "The old bridge opened in 1890, and the OLD bridge isn't closed.",
        user="Tell me about the old river bridge.",
        context="The bridge opened in 1890.",
    )
    # the old bridge opened in 1890 and the old bridge isn't closed: 12 words, 9 distinct
    # in the user turn or the context: the old bridge opened in 1890 (6 of the 9)
    assert features(c) == {"length": 12.0, "distinct": 9 / 12, "overlap": 6 / 9}
    no_context = conv("s/2", c.response.text, user=c.turns[0].text)
    assert features(no_context)["overlap"] == 3 / 9  # the old bridge
    multi = Conversation(
        id="s/3",
        dataset="s",
        turns=(
            Turn("user", "Hello?"),
            Turn("assistant", "It is closed."),
            Turn("user", "Why?"),
            Turn("assistant", "It is old."),
        ),
    )
    assert features(multi) == {"length": 3.0, "distinct": 1.0, "overlap": 2 / 3}  # an earlier reply counts


def test_feature_scores_are_mid_ranks_on_zero_one():
    convs = [conv(f"s/{i}", text) for i, text in enumerate(["a b c", "a", "d e f", "a b c d e"])]
    got = feature_scores(convs, ["naturalness", "on_topic"])
    assert list(got) == ["baseline/length", "baseline/distinct", "baseline/overlap"]
    length = {k: v for k, v in got["baseline/length"].items() if k[1] == "naturalness"}
    assert length == {
        ("s/0", "naturalness"): 0.5,
        ("s/1", "naturalness"): 0.0,
        ("s/2", "naturalness"): 0.5,
        ("s/3", "naturalness"): 1.0,
    }  # 3 words twice: ranks 1 and 2 share 1.5 of 3
    assert all(got["baseline/length"][(c.id, "on_topic")] == length[(c.id, "naturalness")] for c in convs)
    assert set(got["baseline/distinct"].values()) == {0.5}  # every response's words are distinct: all tied
    one = feature_scores(convs[:1], ["naturalness"])
    assert one == {f"baseline/{f}": {("s/0", "naturalness"): 0.5} for f in ("length", "distinct", "overlap")}


# --------------------------------------------------------------------------- teachers and merged items


def rating(cid, teacher, prompt, scale, raw, status="ok", dimension="naturalness") -> Rating:
    return Rating(cid, dimension, teacher, prompt, scale, raw, "", "", status)


def test_teacher_predictions_read_ok_ratings_per_prompt_and_per_teacher():
    ratings = [
        rating("c1", "t1", "scale4", 4, 4),
        rating("c1", "t1", "scale5", 5, 2),
        rating("c1", "t1", "scale5_examples", 5, None, status="unparsable"),
        rating("c2", "t1", "scale4", 4, None, status="failed"),
        rating("c1", "t2", "scale4", 4, 1),
        rating("c1", "t2", "scale4", 4, 3, dimension="on_topic"),
    ]
    assert teacher_predictions(ratings) == {
        "teacher/t1/scale4": {("c1", "naturalness"): 1.0},
        "teacher/t1": {("c1", "naturalness"): 0.625},  # (1.0 + 0.25) / 2: the unparsable one is left out
        "teacher/t1/scale5": {("c1", "naturalness"): 0.25},
        "teacher/t2/scale4": {("c1", "naturalness"): 0.0, ("c1", "on_topic"): 2 / 3},
        "teacher/t2": {("c1", "naturalness"): 0.0, ("c1", "on_topic"): 2 / 3},
    }


def test_item_predictions_one_per_id_and_dimension():
    items = [Item("c1", "naturalness", 0.25, 2, "", "", 12), Item("c1", "on_topic", 1.0, 5, "", "", 12)]
    assert item_predictions(items) == {("c1", "naturalness"): 0.25, ("c1", "on_topic"): 1.0}
    with pytest.raises(ValueError, match="two merged items for 'c1' on 'naturalness'"):
        item_predictions(items + [Item("c1", "naturalness", 0.5, 3, "", "", 12)])


# --------------------------------------------------------------------------- agreement


MAP = {"naturalness": "natural", "on_topic": "half"}


def test_a_rater_equal_to_the_truth_agrees_perfectly_and_a_partial_one_says_what_it_missed():
    hs = rating_set()
    prep = prepare(hs, 0.0)
    truth = truth_rater(hs)
    partial = {k: v for k, v in truth.items() if k[0] in {"s/0", "s/1", "s/2", "s/3"} and k[1] == "naturalness"}
    flipped = {k: 1 - v for k, v in truth.items()}
    res = agreement(prep, {"truth": truth, "partial": partial, "flipped": flipped}, MAP, bootstrap=200, ci=0.95, seed=0)
    t = res["raters"]["truth"]["naturalness"]
    assert (t["n"], t["missing"], t["groups"]) == (6, 0, 3)
    for m in ("spearman", "kendall", "pearson", "qwk"):
        assert t[m]["value"] == pytest.approx(1.0, abs=1e-12), m
        assert (t[m]["low"], t[m]["high"]) == (pytest.approx(1.0, abs=1e-12), pytest.approx(1.0, abs=1e-12)), m
    assert t["mae"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert res["raters"]["flipped"]["naturalness"]["spearman"]["value"] == pytest.approx(-1.0, abs=1e-12)

    p = res["raters"]["partial"]
    assert set(p) == {"naturalness"}  # a dimension it never scored is not reported
    assert (p["naturalness"]["n"], p["naturalness"]["missing"], p["naturalness"]["groups"]) == (4, 2, 2)
    assert p["naturalness"]["spearman"]["value"] == pytest.approx(1.0, abs=1e-12)

    # the 0.5-3.5 scale has no integer categories: no kappa, the rest on [0, 1]
    o = res["raters"]["truth"]["on_topic"]
    assert o["qwk"] == {"value": None, "low": None, "high": None}
    assert o["spearman"]["value"] == pytest.approx(1.0, abs=1e-12) and o["mae"]["value"] == 0.0
    assert res["raters"]["flipped"]["on_topic"]["qwk"]["value"] is None

    assert res["truth"]["naturalness"] == {
        "quality": "natural",
        "scale": [0.0, 4.0],
        "n": 6,
        "mean": 2.0,
        "annotator_spread": 0.5,  # three responses with values 2 apart (spread 1), three with equal values
        "annotators": 2.0,
    }
    assert res["truth"]["on_topic"] == {
        "quality": "half",
        "scale": [0.5, 3.5],
        "n": 6,
        "mean": 2.0,
        "annotator_spread": 0.0,
        "annotators": 1.0,
    }
    assert res["differences"] == {}


def test_differences_are_paired_on_the_same_resamples():
    hs = rating_set()
    truth = truth_rater(hs)
    flipped = {k: 1 - v for k, v in truth.items()}
    pairs = [("x - x", "truth", "truth"), ("x - flipped", "truth", "flipped"), ("x - absent", "truth", "absent")]
    res = agreement(
        prepare(hs, 0.0), {"truth": truth, "flipped": flipped}, MAP, bootstrap=200, ci=0.95, seed=0, pairs=pairs
    )
    assert set(res["differences"]) == {"x - x", "x - flipped"}  # a rater that is not there gives no entry
    same = res["differences"]["x - x"]["naturalness"]
    assert set(same) == {"spearman", "kendall", "pearson", "qwk", "mae", "n"} and same["n"] == 6
    for m in ("spearman", "kendall", "pearson", "qwk", "mae"):
        assert same[m] == {"value": 0.0, "low": 0.0, "high": 0.0}, m
    assert set(res["differences"]["x - x"]["on_topic"]) == {"spearman", "kendall", "pearson", "mae", "n"}
    d = res["differences"]["x - flipped"]["naturalness"]["spearman"]
    assert (d["value"], d["low"], d["high"]) == pytest.approx((2.0, 2.0, 2.0), abs=1e-12)


def test_preference_accuracy_counts_a_rater_tie_as_half():
    prep = prepare(preference_set(), 0.0)
    r = pref_rater()
    half = {k: v for k, v in r.items() if k[0].startswith("p/1/") or k[0] == "p/0/a"}  # p/0 lacks its b side
    a_only = {k: v for k, v in r.items() if k[0].endswith("/a")}
    raters = {"r": r, "half": half, "a_only": a_only}
    res = agreement(
        prep, raters, {"naturalness": "preference"}, bootstrap=0, ci=0.95, seed=0, pairs=[("r - r", "r", "r")]
    )
    got = res["raters"]["r"]["naturalness"]
    # decided battles: right (1) + tie (0.5) + wrong (0) of 3; the people's tie is called a tie too
    assert (got["n"], got["decided"], got["human_ties"], got["missing"]) == (4, 3, 1, 0)
    assert got["accuracy"] == {"value": 0.5, "low": None, "high": None}
    assert got["rater_tie_share"]["value"] == pytest.approx(1 / 3) and got["tie_agreement"]["value"] == 1.0
    h = res["raters"]["half"]["naturalness"]
    assert (h["n"], h["missing"], h["accuracy"]["value"]) == (1, 3, 0.5)
    assert "a_only" not in res["raters"]  # no battle with both sides scored
    assert res["truth"]["naturalness"] == {"quality": "preference", "n": 4, "a": 2, "b": 1, "tie": 1}
    assert res["differences"]["r - r"]["naturalness"] == {"accuracy": {"value": 0.0, "low": None, "high": None}, "n": 4}

    boot = agreement(
        prep, raters, {"naturalness": "preference"}, bootstrap=200, ci=0.95, seed=0, pairs=[("r - r", "r", "r")]
    )
    assert boot["differences"]["r - r"]["naturalness"]["accuracy"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    acc = boot["raters"]["r"]["naturalness"]["accuracy"]
    assert acc["value"] == 0.5 and 0.0 <= acc["low"] <= 0.5 <= acc["high"] <= 1.0


# --------------------------------------------------------------------------- prefix cache and scoring


@pytest.fixture(scope="module")
def rater(tmp_path_factory):
    """A tiny Mistral and its ByteLevel tokenizer (as tests/test_scoring.py builds them), saved to a folder."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from test_scoring import bytelevel_tokenizer, corpus, tiny_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tok = bytelevel_tokenizer(corpus() + ["x 1 y 2 z 3 w 4 v 5"] * 300)
    model = tiny_model(tok)
    folder = tmp_path_factory.mktemp("rater") / "model"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    yield folder, model, tok
    torch.set_num_threads(before)


def scoring_convs() -> list[Conversation]:
    words = "the river city north bank old bridge market square museum".split()
    return [conv(f"s/{i}", "It is by the river. " + " ".join(words[: 2 * i + 1]), group=f"s/g{i}") for i in range(5)]


def test_cached_prefixes_score_exactly_as_without(rater):
    from transformers import AutoTokenizer

    folder, model, tok = rater
    convs = scoring_convs()
    cache = PrefixCache(convs, 1024, "after")
    pre = cache.get(tok, "on_topic")
    assert cache.get(AutoTokenizer.from_pretrained(folder), "on_topic") is pre  # the same tokenizer: encoded once
    assert cache.get(tok, "naturalness") is not pre
    assert PrefixCache(convs, 1024, "before").get(tok, "on_topic") is None

    exs = [example_for(c, "on_topic") for c in convs]
    plain = score_examples(model, tok, exs, max_length=1024, batch_size=2)
    cached = score_examples(model, tok, exs, max_length=1024, batch_size=2, prefixes=pre)
    assert cached == plain and [s.id for s in cached] == [c.id for c in convs]

    for bad in (exs[:3], exs[::-1]):
        with pytest.raises(ScoringError, match="one per example in the examples' order"):
            score_examples(model, tok, bad, max_length=1024, prefixes=pre)
    with pytest.raises(ScoringError, match="layout 'after' only"):
        score_examples(model, tok, exs, max_length=1024, position="before", prefixes=pre)

    kw = {"max_length": 1024, "batch_size": 2, "position": "after", "desc": "t"}
    dims = ["on_topic", "naturalness"]
    with_cache = model_scores(folder, convs, dims, cache=cache, **kw)
    assert with_cache == model_scores(folder, convs, dims, **kw)
    assert set(with_cache) == {(c.id, d) for c in convs for d in dims}
    assert with_cache[("s/0", "on_topic")] == plain[0].expected


def test_tokenizer_key_follows_what_encoding_reads(rater):
    from tokenizers import processors
    from transformers import AutoTokenizer

    folder, _, _ = rater
    a, b = AutoTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    key = tokenizer_key(a)
    assert len(key) == 64 and tokenizer_key(b) == key
    b("a padded call", padding="max_length", truncation=True, max_length=8)  # leaves padding set on the backend
    assert tokenizer_key(b) == key
    added = AutoTokenizer.from_pretrained(folder)
    added.add_tokens(["<extra>"])
    assert tokenizer_key(added) != key
    no_bos = AutoTokenizer.from_pretrained(folder)
    no_bos.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A")
    assert no_bos("hi")["input_ids"] != a("hi")["input_ids"]  # same vocabulary, other encoding
    assert tokenizer_key(no_bos) != key


# --------------------------------------------------------------------------- the report's section


SET_CFG = {"usr_topical_chat": None}  # human_section reads only the names
STUDENT = "student/mixed/naturalness/{}/seed_0"


def report_result(name: str) -> dict:
    """A reports/human/<name>.json as the human_eval stage writes it, with a few values set by hand."""
    hs = rating_set(name)
    prep = prepare(hs, 0.0)
    truth = truth_rater(hs)
    raters = feature_scores(prep.conversations, MAP)
    raters |= {
        "teacher/lexical": truth,
        "teacher/lexical/scale4": truth,
        "ensemble/average": truth,
        "untuned": truth,
        STUDENT.format("both"): {k: v for k, v in truth.items() if k[1] == "naturalness"},
        STUDENT.format("none"): {k: 1 - v for k, v in truth.items() if k[1] == "naturalness"},
    }
    pairs = [("mixed/naturalness/both/seed_0 - none", STUDENT.format("both"), STUDENT.format("none"))]
    res = agreement(prep, raters, MAP, bootstrap=200, ci=0.95, seed=0, pairs=pairs)
    r = res["raters"]
    r["ensemble/average"]["naturalness"]["spearman"] = {"value": 0.5, "low": 0.1, "high": 0.8}
    r["ensemble/average"]["on_topic"]["spearman"] = {"value": 0.3, "low": 0.0, "high": 0.6}
    r["baseline/length"]["naturalness"]["spearman"]["value"] = 0.4
    r["baseline/distinct"]["naturalness"]["spearman"]["value"] = -0.2
    r["baseline/overlap"]["naturalness"]["spearman"]["value"] = None
    r["baseline/length"]["on_topic"]["spearman"]["value"] = 0.6
    r["baseline/distinct"]["on_topic"]["spearman"]["value"] = 0.1
    r["baseline/overlap"]["on_topic"]["spearman"]["value"] = 0.2
    load = {"skipped_total": 2, "dropped_total": 1, "items": 6}
    counts = {
        "set": name,
        "format": "usr",
        "kind": "ratings",
        "items": 6,
        "design_items": 3,
        "left_out": {"design": 3, "in_training": 2, "sampled_out": 0},
        "responses": 6,
        "load": load,
        "map": MAP,
        "bootstrap": 200,
        "ci": 0.95,
    }
    return counts | res


def table_rows(text: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header line starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def section(root: Path, sets) -> tuple[str, dict]:
    parts: list[str] = []
    metrics = human_section(parts.append, root, sets, root / "reports" / "tables")
    return "".join(parts), metrics


@pytest.fixture
def report_root(tmp_path) -> Path:
    (tmp_path / "paper").mkdir()
    shutil.copy(ROOT / "paper" / "published_human_agreement.csv", tmp_path / "paper")
    write_json(tmp_path / "reports" / "human" / "usr_topical_chat.json", report_result("usr_topical_chat"))
    return tmp_path


def test_the_section_writes_the_table_the_comparisons_and_the_csv(report_root):
    text, metrics = section(report_root, SET_CFG)
    assert "### usr_topical_chat (usr)" in text
    assert (
        "6 responses measured (3 in the design part left out, 2 asking what a training or validation example "
        "asked, 0 past `max_items`; 3 source records skipped or dropped" in text
    )
    assert "Quality per dimension: Naturalness ← natural, On-topic ← half." in text
    rows = table_rows(text, "| rater | Naturalness | On-topic |")
    assert [r[0] for r in rows] == [
        "distinct (baseline)",
        "length (baseline)",
        "overlap (baseline)",
        "teacher lexical",  # the teacher's mean, not each prompt
        "ensemble (average)",
        "untuned student",
        "student mixed / both / seed_0",
        "student mixed / none / seed_0",
    ]
    cells = {r[0]: r[1:] for r in rows}
    assert cells["ensemble (average)"] == ["0.500 [0.10, 0.80]", "0.300 [0.00, 0.60]"]
    assert cells["teacher lexical"][0] == "1.000 [1.00, 1.00]"
    assert cells["overlap (baseline)"][0].startswith("–")
    assert cells["student mixed / both / seed_0"] == ["1.000 [1.00, 1.00]", ""]  # a student rates its own dimension
    assert (
        "Ensemble (average) against the best one-feature baseline (spearman): "
        "Naturalness: ensemble 0.500 > length 0.400; On-topic: ensemble 0.300 ≤ length 0.600.\n" in text
    )
    diffs = table_rows(text, "| pair | Naturalness | On-topic |")
    assert diffs == [["mixed/naturalness/both/seed_0 - none", "2.000 [2.00, 2.00]", ""]]
    assert metrics == {
        "usr_topical_chat": {
            "items": 6,
            "ensemble_beats_baselines": {
                "naturalness": {"ensemble": 0.5, "best_baseline": "baseline/length", "baseline": 0.4, "beats": True},
                "on_topic": {"ensemble": 0.3, "best_baseline": "baseline/length", "baseline": 0.6, "beats": False},
            },
        }
    }

    with (report_root / "reports" / "tables" / "human_usr_topical_chat.csv").open(newline="") as fh:
        table = list(csv.DictReader(fh))
    metrics8 = ["spearman", "kendall", "pearson", "qwk", "mae", "accuracy", "rater_tie_share", "tie_agreement"]
    assert list(table[0]) == [
        "rater",
        "dimension",
        "n",
        *metrics8,
        *(f"{m}_low" for m in metrics8),
        *(f"{m}_high" for m in metrics8),
    ]
    assert len(table) == 3 * 2 + 2 + 2 + 2 + 2 + 1 + 1  # baselines, teacher, its prompt, ensemble, untuned, students
    row = next(r for r in table if (r["rater"], r["dimension"]) == ("ensemble/average", "naturalness"))
    assert (row["n"], row["spearman"], row["spearman_low"], row["spearman_high"]) == (
        "6",
        "0.500000",
        "0.100000",
        "0.800000",
    )
    assert (row["mae"], row["accuracy"], row["accuracy_low"]) == ("0.000000", "", "")


def test_published_figures_sit_beside_ours_for_that_set(report_root):
    text, _ = section(report_root, SET_CFG)
    rows = table_rows(text, "| system | quality | metric | published | ours (ensemble) | source |")
    assert len(rows) == 7
    assert rows[0][:5] == ["G-Eval (GPT-4)", "natural", "spearman", "0.565", "0.500"]
    assert rows[1][:5] == ["G-Eval (GPT-4)", "maintains_context", "spearman", "0.605", ""]  # not a mapped quality
    assert "Published figures for sets this profile does not measure" not in text


def test_a_set_without_results_says_so_and_no_set_says_none_is_named(report_root):
    text, metrics = section(report_root, {"helpsteer": None})
    assert (
        "### helpsteer\n\nNo results (`reports/human/helpsteer.json` is missing: run `dvc repro human_eval`).\n" in text
    )
    assert metrics == {}
    assert "Published figures for sets this profile does not measure (`usr_topical_chat`)" in text
    assert not (report_root / "reports" / "tables" / "human_helpsteer.csv").exists()

    text, metrics = section(report_root, {})
    assert text == (
        "## Agreement with people\n\nThis profile names no human-rated set (`human.sets`), "
        "so no rater was compared with people.\n\n"
    )
    assert metrics == {}


def test_a_preference_set_reports_accuracy(tmp_path):
    prep = prepare(preference_set(), 0.0)
    raters = {"ensemble/average": pref_rater(), **feature_scores(prep.conversations, ["naturalness"])}
    res = agreement(prep, raters, {"naturalness": "preference"}, bootstrap=0, ci=0.95, seed=0)
    counts = {
        "set": "arena",
        "format": "hh_rlhf_pairs",
        "kind": "preferences",
        "items": 4,
        "design_items": 0,
        "responses": 8,
        "load": {},
        "map": {"naturalness": "preference"},
        "bootstrap": 0,
        "ci": 0.95,
    }
    write_json(tmp_path / "reports" / "human" / "arena.json", counts | res)
    text, metrics = section(tmp_path, {"arena": None})
    # a results file from before the leak guard has no left_out: its counts read as none
    assert "4 battles measured (0 in the design part left out, 0 asking what a training or validation" in text
    assert "Cells: pairwise accuracy on the battles a person decided (a rater's tie counts half)." in text
    cells = {r[0]: r[1:] for r in table_rows(text, "| rater | Naturalness |")}
    assert cells["ensemble (average)"] == ["0.500"]  # no bootstrap: no interval
    assert metrics["arena"]["ensemble_beats_baselines"]["naturalness"]["ensemble"] == 0.5


# --------------------------------------------------------------------------- explainft agree


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> Path:
    """params.yaml with its response cache in a temporary folder (the heuristic teachers need no network)."""
    tmp = tmp_path_factory.mktemp("teachers")
    p = copy.deepcopy(PARAMS)
    p["annotate"]["cache"] = str(tmp / "annotate.sqlite")
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


HS_MAP = ["--map", "naturalness=coherence", "--map", "comprehensiveness=helpfulness"]


def printed(output: str) -> dict[tuple[str, str], list[str]]:
    """The printed table as {(rater, dimension): [n, metrics…]}."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("rater "))
    return {tuple(line.split()[:2]): line.split()[2:] for line in lines[start + 1 :] if not line.startswith("agree:")}


@pytest.mark.parametrize("target", [HELPSTEER, HELPSTEER / "train.jsonl"], ids=["folder", "file"])
def test_agree_with_the_teachers_prints_and_writes_every_rater(target, teachers, tmp_path):
    out = tmp_path / "agree.json"
    args = ["agree", str(target), "--format", "helpsteer", *HS_MAP, "--teachers", str(teachers), "--bootstrap", "0"]
    res = CliRunner().invoke(cli, [*args, "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert f"agree: 4 items of {target} (helpsteer, ratings)" in res.output
    table = printed(res.output)
    raters = {r for r, _ in table}
    assert {
        "baseline/length",
        "baseline/distinct",
        "baseline/overlap",
        "ensemble/average",
        "ensemble/most_frequent",
        "teacher/lexical",
        "teacher/strict",
        "teacher/lenient",
        "teacher/lexical/scale4",
    } <= raters
    assert {d for _, d in table} == {"naturalness", "comprehensiveness"}
    # response lengths 20, 5, 11, 16 words against helpfulness 4, 1, 3, 0: rho = 1 - 6 * 6 / (4 * 15)
    assert table[("baseline/length", "comprehensiveness")][:2] == ["4", "0.400"]
    got = json.loads(out.read_text())
    assert (got["file"], got["format"], got["kind"], got["items"]) == (str(target), "helpsteer", "ratings", 4)
    length = got["raters"]["baseline/length"]["comprehensiveness"]
    assert length["spearman"] == {"value": pytest.approx(0.4), "low": None, "high": None}
    assert (length["n"], length["missing"]) == (4, 0)
    assert f"agree: every number in {out}" in res.output


def test_agree_reads_a_file_named_like_a_pattern_as_itself(teachers, tmp_path):
    lines = (HELPSTEER / "train.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "ratings [final].jsonl").write_text("".join(lines))
    (tmp_path / "ratings f.jsonl").write_text(lines[0])  # what the name matches as a glob
    args = ["agree", str(tmp_path / "ratings [final].jsonl"), "--format", "helpsteer", *HS_MAP]
    res = CliRunner().invoke(cli, [*args, "--teachers", str(teachers), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    assert "agree: 4 items of" in res.output


def test_agree_on_a_preference_set_maps_every_dimension_to_the_preference(teachers, tmp_path):
    out = tmp_path / "agree.json"
    args = ["agree", str(ARENA), "--format", "arena_human_preference", "--teachers", str(teachers)]
    res = CliRunner().invoke(cli, [*args, "--bootstrap", "0", "--json", str(out)])
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    assert got["kind"] == "preferences" and set(got["truth"]) == set(PARAMS["annotate"]["dimensions"])
    assert all(t["quality"] == "preference" for t in got["truth"].values())
    assert set(got["raters"]["ensemble/average"]["on_topic"]) >= {"accuracy", "rater_tie_share", "n", "decided"}


def test_agree_errors(teachers):
    runner = CliRunner()
    base = ["agree", str(HELPSTEER), "--format", "helpsteer", "--bootstrap", "0"]
    res = runner.invoke(cli, [*base, *HS_MAP])
    assert res.exit_code == 2 and "name a rater (--rater MODEL_DIR) or a profile's teachers" in res.output
    res = runner.invoke(cli, [*base, "--teachers", str(teachers), "--map", "naturalness"])
    assert res.exit_code == 1
    assert "agree: params: --map: expected DIMENSION=QUALITY, got 'naturalness'" in res.output
    res = runner.invoke(cli, [*base, "--teachers", str(teachers), "--map", "naturalness=fluency"])
    assert res.exit_code == 1
    assert "'fluency' is not a quality of format helpsteer; it has: helpfulness, correctness" in res.output
    assert "--map.naturalness:" in res.output and "human.sets" not in res.output  # the option the user gave
    res = runner.invoke(cli, [*base, "--teachers", str(teachers)])  # no dimension is a HelpSteer attribute
    assert res.exit_code == 1 and "--map: no dimension maps to a quality of this helpsteer file" in res.output


def test_parse_map_defaults_and_errors():
    dims = ("naturalness", "comprehensiveness", "on_topic")
    assert agree_body.parse_map([], "arena_human_preference", dims) == dict.fromkeys(dims, "preference")
    assert agree_body.parse_map([], "hh_rlhf_pairs", dims[:1]) == {"naturalness": "preference"}
    assert agree_body.parse_map([], "helpsteer", dims) == {}
    assert agree_body.parse_map([], "gold", dims[:2]) == {
        "naturalness": "naturalness",
        "comprehensiveness": "comprehensiveness",
    }
    given = ["naturalness=coherence", "on_topic=correctness"]
    assert agree_body.parse_map(given, "helpsteer", dims) == {"naturalness": "coherence", "on_topic": "correctness"}
    for bad in ("naturalness", "=coherence", "naturalness="):
        with pytest.raises(ConfigError) as ei:
            agree_body.parse_map([bad], "helpsteer", dims)
        assert ei.value.key == "--map" and repr(bad) in ei.value.message


def test_agree_with_a_rater_folder(rater, tmp_path):
    folder, _, _ = rater
    out = tmp_path / "agree.json"
    args = ["agree", str(HELPSTEER), "--format", "helpsteer", "--map", "naturalness=coherence", "--rater", str(folder)]
    res = CliRunner().invoke(cli, [*args, "--bootstrap", "0", "--max-length", "1024", "--json", str(out)])
    assert res.exit_code == 0, res.output
    name = f"model/{folder}"
    assert printed(res.output)[(name, "naturalness")][0] == "4"
    got = json.loads(out.read_text())["raters"][name]["naturalness"]
    assert (got["n"], got["missing"]) == (4, 0)
    hs = load_human_set("helpsteer", HELPSTEER, "agree")
    scores = model_scores(
        folder,
        [u.conversation for u in hs.ratings],
        ["naturalness"],
        max_length=1024,
        batch_size=32,
        position="after",
        desc="t",
    )
    mae = sum(abs(scores[(u.id, "naturalness")] - u.qualities["coherence"].mean / 4) for u in hs.ratings) / 4
    assert got["mae"]["value"] == pytest.approx(mae, abs=1e-9)
