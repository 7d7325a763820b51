"""Golden set: the loader names file, line and field; MAE/MSE/Spearman match hand-computed values; Table 2 shape."""

from __future__ import annotations

import csv
import json
import random

import pandas as pd
import pytest
from conftest import FIXTURES, ROOT

from explainft.errors import RecordError
from explainft.golden import (
    ROW_LABELS,
    evaluate_golden,
    golden_table_markdown,
    load_golden,
    spearman,
    write_golden,
)
from explainft.merge import merge_ratings
from explainft.records import Item, Rating

GOLDEN = FIXTURES / "golden"
USER = {"role": "user", "text": "Hi?"}
BOT = {"role": "assistant", "text": "Hello!"}


def line(**kw):
    obj = {"id": "g/1", "turns": [USER, BOT], "ratings": {"naturalness": {"score": 3, "scale": 4}}}
    obj.update(kw)
    return json.dumps(obj)


def R(id, prompt, raw, teacher="t1", dim="naturalness", status="ok"):
    scale = 4 if prompt.startswith("scale4") else 5
    return Rating(
        id=id,
        dimension=dim,
        teacher=teacher,
        prompt=prompt,
        scale=scale,
        raw_score=raw if status == "ok" else None,
        assessment="a",
        confidence="c",
        status=status,
    )


def I(id, score, dim="naturalness"):
    return Item(id=id, dimension=dim, score=score, label=1 + round(4 * score), assessment="", confidence="", n_valid=1)


# --------------------------------------------------------------------------- loader


def test_load_golden_fixture():
    convs, truth = load_golden(GOLDEN / "valid.jsonl")
    assert [c.id for c in convs] == ["golden/001", "golden/002", "golden/003"]
    assert all(c.dataset == "golden" for c in convs)
    assert convs[2].context.startswith("The fox hid") and convs[1].meta == {"source": "hand-written example"}
    assert convs[1].turns[0].speaker == "A"
    assert truth == pytest.approx(
        {
            ("golden/001", "naturalness"): 1.0,
            ("golden/001", "comprehensiveness"): 2 / 3,
            ("golden/001", "on_topic"): 1.0,
            ("golden/002", "naturalness"): 1 / 3,
            ("golden/002", "on_topic"): 0.5,
            ("golden/003", "naturalness"): 0.0,
            ("golden/003", "comprehensiveness"): 0.25,
        }
    )


BAD = [
    # (lines, bad line number, reason, field)
    ([line(), "{not json"], 2, "bad_json", None),
    ([line(), "[1, 2]"], 2, "wrong_type", None),
    ([line(id=None)], 1, "missing_field", "id"),
    ([json.dumps({"id": "g/1", "turns": [USER, BOT]})], 1, "missing_field", "ratings"),
    ([line(turns=None)], 1, "missing_field", "turns"),
    ([line(turns=[USER, {"role": "assistant"}])], 1, "missing_field", "turns[1].text"),
    ([line(turns=[BOT, USER])], 1, "last_turn_not_response", "turns[1].role"),
    ([line(ratings={"naturalness": {"score": 5, "scale": 4}})], 1, "out_of_range", "ratings.naturalness.score"),
    ([line(ratings={"on_topic": {"score": 0, "scale": 5}})], 1, "out_of_range", "ratings.on_topic.score"),
    ([line(ratings={"naturalness": {"score": 2, "scale": 3}})], 1, "bad_value", "ratings.naturalness.scale"),
    ([line(ratings={"naturalness": {"score": 2}})], 1, "missing_field", "ratings.naturalness.scale"),
    ([line(ratings={"naturalness": {"score": True, "scale": 4}})], 1, "wrong_type", "ratings.naturalness.score"),
    ([line(ratings={"naturalness": {"score": 2.5, "scale": 4}})], 1, "wrong_type", "ratings.naturalness.score"),
    (
        [line(ratings={"naturalness": {"score": 2, "scale": 4, "rater": "x"}})],
        1,
        "unknown_field",
        "ratings.naturalness.rater",
    ),
    ([line(ratings={"fluency": {"score": 2, "scale": 4}})], 1, "bad_value", "ratings.fluency"),
    ([line(ratings={})], 1, "missing_field", "ratings"),
    ([line(ratings=[3])], 1, "wrong_type", "ratings"),
    ([line(rating={"naturalness": {"score": 2, "scale": 4}})], 1, "unknown_field", "rating"),
    ([line(), "", line(id="g/2"), line()], 4, "duplicate_id", "id"),
]


@pytest.mark.parametrize("lines, lineno, reason, field", BAD)
def test_load_golden_errors_name_file_line_and_field(tmp_path, lines, lineno, reason, field):
    p = tmp_path / "golden.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as e:
        load_golden(p)
    err = e.value
    assert (err.reason, err.file, err.line, err.field) == (reason, str(p), lineno, field)
    assert str(err).startswith(f"{p}:{lineno}: ")
    if field:
        assert f"field {field!r}" in str(err)


def test_duplicate_id_says_where_the_first_was(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text("\n".join([line(), line(id="g/2"), line()]), encoding="utf-8")
    with pytest.raises(RecordError, match=r"g\.jsonl:3: record g/1: field 'id': id already used on line 1"):
        load_golden(p)


def test_load_golden_bad_encoding_empty_and_missing_files(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_bytes(line().encode() + b"\n\xff\xfe\n")
    with pytest.raises(RecordError) as e:
        load_golden(p)
    assert (e.value.reason, e.value.line) == ("bad_encoding", 2)
    p.write_text("\n\n", encoding="utf-8")
    with pytest.raises(RecordError) as e:
        load_golden(p)
    assert e.value.reason == "empty_file" and e.value.file == str(p)
    with pytest.raises(RecordError) as e:
        load_golden(tmp_path / "nope.jsonl")
    assert e.value.reason == "missing_file" and "nope.jsonl" in str(e.value)


# --------------------------------------------------------------------------- Spearman


@pytest.mark.parametrize(
    "x, y, rho",
    [
        ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),
        ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
        # ties both sides: ranks [1, 2.5, 2.5, 4] and [1, 4, 2.5, 2.5]; cov 2.25 / sqrt(4.5 * 4.5) = 0.5
        ([1, 2, 2, 3], [1, 3, 2, 2], 0.5),
        # ranks [1.5, 1.5, 3.5, 3.5] and [1.5, 3.5, 1.5, 3.5]: uncorrelated
        ([0, 0, 1, 1], [0, 1, 0, 1], 0.0),
        ([1, 2], [1, 2], 1.0),
    ],
)
def test_spearman_hand_computed(x, y, rho):
    assert spearman(x, y) == pytest.approx(rho)


@pytest.mark.parametrize("x, y", [([], []), ([1], [2]), ([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [5, 5, 5])])
def test_spearman_undefined_is_none(x, y):
    assert spearman(x, y) is None


def test_spearman_agrees_with_pandas_dataframe_corr():
    # DataFrame.corr(method="spearman") runs without scipy (Series.corr does not); it also uses average ranks
    rng = random.Random(7)
    for _ in range(20):
        n = rng.randint(3, 30)
        x = [rng.randint(1, 5) for _ in range(n)]
        y = [rng.randint(1, 4) / 3 for _ in range(n)]
        expected = pd.DataFrame({"x": x, "y": y}).corr(method="spearman").loc["x", "y"]
        got = spearman(x, y)
        assert (got is None and pd.isna(expected)) or got == pytest.approx(expected)


# --------------------------------------------------------------------------- evaluate


@pytest.fixture
def toy():
    truth = {
        ("a", "naturalness"): 1.0,
        ("b", "naturalness"): 0.5,
        ("c", "naturalness"): 0.0,
        ("d", "naturalness"): 0.5,
        ("a", "on_topic"): 0.25,
    }
    ratings = [
        # scale5: a (1.0 + 0.75) / 2 = 0.875; b 0.5 (t2 unparsable); c (0.25 + 0) / 2 = 0.125; d none; e not golden
        R("a", "scale5", 5),
        R("a", "scale5", 4, "t2"),
        R("b", "scale5", 3),
        R("b", "scale5", None, "t2", status="unparsable"),
        R("c", "scale5", 2),
        R("c", "scale5", 1, "t2"),
        R("e", "scale5", 3),
        # scale4: a 1.0, b 1.0, c 0.0, d 1/3
        R("a", "scale4", 4),
        R("b", "scale4", 4),
        R("c", "scale4", 1),
        R("d", "scale4", 2),
    ]
    items = {"average": [I("a", 0.9), I("b", 0.5), I("c", 0.1)]}
    return ratings, items, truth


def test_evaluate_golden_hand_computed(toy):
    ratings, items, truth = toy
    res = evaluate_golden(ratings, items, truth)
    s5 = res["prompts"]["scale5"]["naturalness"]
    # errors 0.125, 0, 0.125 -> MAE 0.25 / 3, MSE 2 * 0.015625 / 3; same ranks -> rho 1
    assert s5["n"] == 3 and s5["missing_prediction"] == 1 and s5["not_in_golden"] == 1
    assert s5["mae"] == pytest.approx(0.25 / 3) and s5["mse"] == pytest.approx(0.03125 / 3)
    assert s5["spearman"] == pytest.approx(1.0)
    s4 = res["prompts"]["scale4"]["naturalness"]
    # pred [1, 1, 0, 1/3] vs truth [1, .5, 0, .5]: errors 0, .5, 0, 1/6 -> MAE (2/3)/4 = 1/6, MSE (1/4 + 1/36)/4 = 10/144
    # ranks [3.5, 3.5, 1, 2] vs [4, 2.5, 1, 2.5]: sxy 3.75, sxx = syy = 4.5 -> rho 5/6
    assert (s4["n"], s4["missing_prediction"], s4["not_in_golden"]) == (4, 0, 0)
    assert s4["mae"] == pytest.approx(1 / 6) and s4["mse"] == pytest.approx(10 / 144)
    assert s4["spearman"] == pytest.approx(5 / 6)
    avg = res["merges"]["average"]["naturalness"]
    assert avg["mae"] == pytest.approx(0.2 / 3) and avg["mse"] == pytest.approx(0.02 / 3)
    assert avg["spearman"] == pytest.approx(1.0) and avg["missing_prediction"] == 1
    # a variant without ratings is still a row, with every golden item counted missing
    ex = res["prompts"]["scale5_examples"]
    assert ex["naturalness"] == {
        "n": 0,
        "mae": None,
        "mse": None,
        "spearman": None,
        "missing_prediction": 4,
        "not_in_golden": 0,
    }
    # on_topic: one golden item, no predictions
    assert res["prompts"]["scale5"]["on_topic"]["missing_prediction"] == 1
    assert res["merges"]["average"]["comprehensiveness"]["n"] == 0
    assert res["truth"] == {"naturalness": 4, "comprehensiveness": 0, "on_topic": 1}
    assert res["ratings"] == {"ok": 10, "unparsable": 1, "failed": 0}
    assert list(res["prompts"]) == ["scale4", "scale4_examples", "scale5", "scale5_examples"]
    json.dumps(res, allow_nan=False)


def test_evaluate_golden_rejects_two_items_for_one_key(toy):
    ratings, _, truth = toy
    with pytest.raises(RecordError, match="average"):
        evaluate_golden(ratings, {"average": [I("a", 0.5), I("a", 0.7)]}, truth)


# --------------------------------------------------------------------------- Table 2


def fixture_results():
    """Golden fixture + deterministic fake teacher ratings, merged with average and most_frequent."""
    convs, truth = load_golden(GOLDEN / "valid.jsonl")
    ratings = []
    for i, c in enumerate(convs):
        for j, dim in enumerate(("naturalness", "comprehensiveness", "on_topic")):
            for k, teacher in enumerate(("t1", "t2", "t3")):
                for m, prompt in enumerate(("scale4", "scale4_examples", "scale5", "scale5_examples")):
                    scale = 4 if prompt.startswith("scale4") else 5
                    if c.id == "golden/003" and prompt == "scale5_examples":
                        continue  # never rated with that prompt: counted missing in the table's note
                    if (i + j + k + m) % 7 == 3:
                        ratings.append(Rating(c.id, dim, teacher, prompt, scale, None, "", "", "unparsable"))
                        continue
                    raw = 1 + (i * 5 + j * 3 + k * 2 + m) % scale
                    ratings.append(Rating(c.id, dim, teacher, prompt, scale, raw, f"{teacher} {prompt}", "sure", "ok"))
    items = {
        m: merge_ratings(ratings, score_method=m, order=["t1", "t2", "t3"])[0] for m in ("average", "most_frequent")
    }
    return evaluate_golden(ratings, items, truth)


def test_table2_markdown_snapshot():
    md = golden_table_markdown(fixture_results())
    assert md == (GOLDEN / "table2.md").read_text(encoding="utf-8")


def test_table2_markdown_survives_a_json_round_trip_and_keeps_row_order():
    res = fixture_results()
    again = json.loads(json.dumps(res, sort_keys=True))  # sorted keys: row order must not come from dict order
    assert golden_table_markdown(again) == golden_table_markdown(res)
    rows = [ln.split(" | ")[0].lstrip("| ") for ln in golden_table_markdown(res).splitlines()[2:8]]
    assert rows == [
        "Scale 1-4",
        "Scale 1-4 with Examples",
        "Scale 1-5",
        "Scale 1-5 with Examples",
        "Average",
        "Most Occurrence",
    ]


def test_row_labels_match_the_papers_table2():
    with open(ROOT / "paper" / "table2_teacher_prompts_vs_golden.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert [r["prompt_or_merge"] for r in table] == list(ROW_LABELS.values())
    assert list(table[0])[1:] == [
        f"{d}_{m}" for d in ("naturalness", "comprehensiveness", "on_topic") for m in ("mae", "mse")
    ]


def test_write_golden_is_sorted_json_and_the_markdown(tmp_path):
    res = fixture_results()
    write_golden(res, tmp_path / "m" / "golden.json", tmp_path / "r" / "table2.md")
    text = (tmp_path / "m" / "golden.json").read_text(encoding="utf-8")
    assert json.loads(text) == json.loads(json.dumps(res))
    assert text == json.dumps(res, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert (tmp_path / "r" / "table2.md").read_text(encoding="utf-8") == golden_table_markdown(res)
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_the_documented_example_is_a_valid_golden_line():
    import explainft.golden as golden

    doc = golden.__doc__
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    conv, scores = golden.parse_golden_line(json.loads(block))
    assert conv.id == "golden/0001" and conv.context
    assert scores == {"naturalness": 1.0, "on_topic": 1.0}


def test_golden_stage_annotates_merges_and_compares_a_configured_set(tmp_path):
    """run_golden end to end with the default profile's offline teachers on the fixture set."""
    import shutil

    from conftest import ROOT

    from explainft.config import load_params
    from explainft.errors import ConfigError
    from explainft.stages.golden import run as run_golden

    (tmp_path / "golden").mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "golden" / "valid.jsonl", tmp_path / "golden" / "set.jsonl")
    params = load_params(ROOT / "params.yaml")
    params["annotate"]["cache"] = str(tmp_path / "cache.sqlite")
    params["golden"]["path"] = "golden/set.jsonl"
    result = run_golden(params, root=tmp_path)
    metrics = json.loads((tmp_path / "metrics" / "golden.json").read_text())
    assert set(metrics["prompts"]) == {"scale4", "scale4_examples", "scale5", "scale5_examples"}
    assert set(metrics["merges"]) == {"average", "most_frequent"}  # no judge configured: no llm row
    nat = metrics["merges"]["average"]["naturalness"]
    assert nat["n"] == result["truth"]["naturalness"] > 0 and nat["missing_prediction"] == 0
    assert 0 <= nat["mae"] <= 1 and 0 <= nat["mse"] <= nat["mae"]
    table = (tmp_path / "reports" / "golden.md").read_text()
    assert "Scale 1-4 with Examples" in table and "Most Occurrence" in table
    # a path outside golden/ is refused before any work
    params["golden"]["path"] = "elsewhere/set.jsonl"
    with pytest.raises(ConfigError) as ei:
        run_golden(params, root=tmp_path)
    assert ei.value.key == "golden.path"
