"""Human-rated sets (explainft.human): the seven formats on good files to exact values, and on bad input.

Fixtures in tests/fixtures/human/ are written by the project (see its README); the real HelpSteer and Arena
human-preference slices are read from human/ at the repository root.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, ROOT

from explainft.errors import ConfigError, RecordError
from explainft.human import FORMATS, Annotation, HumanSet, PreferencePair, Scale, load_human_set
from explainft.records import Conversation, Turn

HUMAN = FIXTURES / "human"
REAL_HELPSTEER = ROOT / "human" / "helpsteer"
REAL_ARENA = ROOT / "human" / "arena_human_preference" / "lmsys_lmsys-arena-human-preference-55k_sample.jsonl"
BAD_UTF8 = b'{"prompt": "caf\xe9 \xff"}'


def group(name: str, *parts: str) -> str:
    return f"{name}/p{hashlib.sha256(chr(0x1F).join(parts).encode()).hexdigest()[:12]}"


def turns(conv: Conversation) -> list[tuple[str, str]]:
    return [(t.role, t.text) for t in conv.turns]


def write(path: Path, lines: list[str | bytes | dict]) -> Path:
    """Write JSON lines (dicts are dumped, bytes written as they are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = b""
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        out += (line if isinstance(line, bytes) else line.encode()) + b"\n"
    path.write_bytes(out)
    return path


def expect_error(fmt: str, raw_dir: Path, reason: str, path: Path, line: int, *, options=None, items: int = 1) -> None:
    """Raise mode names file and line; skip mode counts one ``skipped.<reason>`` and keeps ``items`` items."""
    with pytest.raises(RecordError) as err:
        load_human_set(fmt, raw_dir, "s", options)
    assert err.value.reason == reason, str(err.value)
    assert f"{path}:{line}" in str(err.value)
    hs = load_human_set(fmt, raw_dir, "s", options, on_error="skip")
    assert hs.load["skipped"] == {reason: 1}
    assert hs.load["items"] == items == hs.items


# --------------------------------------------------------------------------- records and registry


def test_scale_annotation_and_pair_values():
    assert Scale(1, 5).normalise(4) == 0.75
    with pytest.raises(ValueError):
        Scale(2, 2)
    a = Annotation((4, 5, 3), Scale(1, 5))
    assert a.values == (4.0, 5.0, 3.0) and a.mean == 4.0 and a.normalised == 0.75
    assert math.isclose(a.spread, math.sqrt(2 / 3))
    assert Annotation((2,), Scale(0, 4)).spread == 0.0
    with pytest.raises(ValueError):
        Annotation((), Scale(0, 1))
    with pytest.raises(ValueError):
        Annotation((6,), Scale(1, 5))
    conv = Conversation("p/a", "d", (Turn("user", "q"), Turn("assistant", "r")), group="g")
    other = Conversation("p/b", "d", (Turn("user", "q"), Turn("assistant", "s")), group="g")
    assert PreferencePair("p", "g", conv, other, "tie").winner == "tie"
    with pytest.raises(ValueError):
        PreferencePair("p", "g", conv, other, "draw")
    with pytest.raises(ValueError):
        PreferencePair("p", "g", other, conv, "a")


def test_registry_and_option_errors(tmp_path: Path):
    assert {n: f.kind for n, f in FORMATS.items()} == {
        "helpsteer": "ratings",
        "arena_human_preference": "preferences",
        "chatbot_arena": "preferences",
        "hh_rlhf_pairs": "preferences",
        "usr": "ratings",
        "fed": "ratings",
        "gold": "ratings",
    }
    assert all(f.option_keys == ("files",) and f.name == n for n, f in FORMATS.items())
    with pytest.raises(ConfigError) as err:
        load_human_set("helpsteer2", tmp_path, "mine")
    assert err.value.key == "human.sets.mine.format" and "gold, helpsteer, hh_rlhf_pairs" in err.value.message
    with pytest.raises(ConfigError) as err:
        load_human_set("helpsteer", tmp_path, "mine", {"file": ["*.jsonl"]})
    assert err.value.key == "human.sets.mine.options.file"
    for bad in ("*.jsonl", [], [""], [3]):
        with pytest.raises(ConfigError) as err:
            load_human_set("usr", tmp_path, "mine", {"files": bad})
        assert err.value.key == "human.sets.mine.options.files"
    # the manifest is never read: a folder with only it has no raw file
    (tmp_path / "SOURCE.json").write_text("{}")
    with pytest.raises(RecordError) as err:
        load_human_set("usr", tmp_path, "mine", {"files": ["*.json"]})
    assert err.value.reason == "missing_file" and str(tmp_path) in str(err.value) and "['*.json']" in str(err.value)
    with pytest.raises(RecordError) as err:
        load_human_set("fed", tmp_path / "absent", "mine")
    assert err.value.reason == "missing_file" and "fed_data.json" in str(err.value)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(RecordError) as err:
        load_human_set("gold", tmp_path, "mine")
    assert err.value.reason == "empty_file"


# --------------------------------------------------------------------------- helpsteer


def test_helpsteer_fixture_exact():
    hs = load_human_set("helpsteer", HUMAN / "helpsteer", "hs")
    assert (hs.name, hs.format, hs.kind, hs.pairs) == ("hs", "helpsteer", "ratings", [])
    assert hs.qualities == dict.fromkeys(
        ["helpfulness", "correctness", "coherence", "complexity", "verbosity"], Scale(0, 4)
    )
    assert [r.conversation.id for r in hs.ratings] == ["hs/0", "hs/1", "hs/2", "hs/3"]
    basil = "What is a good way to keep basil fresh?"
    note = (
        "Summarise the note below in one sentence.\n\nExtra: The library on Elm Street closes early on Fridays "
        "during the summer, at 3 pm instead of 6 pm."
    )
    assert [r.conversation.group for r in hs.ratings] == [group("hs", basil)] * 2 + [group("hs", note)] * 2
    assert turns(hs.ratings[1].conversation) == [("user", basil), ("assistant", "Put it in the fridge.")]
    assert turns(hs.ratings[2].conversation)[0] == ("user", note)  # Extra: stays inside the one user turn
    q = hs.ratings[3].qualities
    assert {k: a.values for k, a in q.items()} == {
        "helpfulness": (0.0,),
        "correctness": (2.0,),
        "coherence": (2.0,),
        "complexity": (1.0,),
        "verbosity": (2.0,),
    }
    assert (q["correctness"].mean, q["correctness"].spread, q["correctness"].normalised) == (2.0, 0.0, 0.5)
    assert all(r.conversation.dataset == "hs" and r.conversation.context is None for r in hs.ratings)
    assert hs.load == {
        "source_records": 4,
        "skipped": {},
        "skipped_total": 0,
        "dropped": {},
        "dropped_total": 0,
        "policy": {},
        "values_skipped": {},
        "items": 4,
    }


def test_helpsteer_real_slice():
    if not REAL_HELPSTEER.is_dir():
        pytest.skip("the real HelpSteer slice is not in human/")
    hs = load_human_set("helpsteer", REAL_HELPSTEER, "helpsteer")
    assert hs.items == 500 and hs.load["skipped_total"] == 0 and hs.load["policy"] == {}
    groups = [r.conversation.group for r in hs.ratings]
    assert len(set(groups)) == 139
    # responses to one prompt are consecutive rows: a group never comes back once left
    assert sum(1 for a, b in zip(groups, groups[1:]) if a != b) == 138
    for quality, counts in (("helpfulness", [13, 28, 100, 239, 120]), ("coherence", [3, 15, 60, 208, 214])):
        c = Counter(r.qualities[quality].values[0] for r in hs.ratings)
        assert [c[float(v)] for v in range(5)] == counts


def test_helpsteer_gz_and_unknown_field(tmp_path: Path):
    rows = (HUMAN / "helpsteer" / "train.jsonl").read_bytes()
    with gzip.open(tmp_path / "train.jsonl.gz", "wb") as fh:
        fh.write(rows)
    assert (
        load_human_set("helpsteer", tmp_path, "hs").ratings
        == load_human_set("helpsteer", HUMAN / "helpsteer", "hs").ratings
    )
    row = json.loads(rows.splitlines()[0]) | {"rater": "x"}
    write(tmp_path / "u" / "a.jsonl", [row])
    hs = load_human_set("helpsteer", tmp_path / "u", "hs")
    assert hs.load["policy"] == {"unknown_field": 1} and hs.items == 1


GOOD_HS = {
    "prompt": "Hi?",
    "response": "Hello.",
    **dict.fromkeys(["helpfulness", "correctness", "coherence", "complexity", "verbosity"], 2),
}


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({k: v for k, v in GOOD_HS.items() if k != "verbosity"}, "missing_field"),
        (GOOD_HS | {"coherence": 3.0}, "wrong_type"),
        (GOOD_HS | {"coherence": "3"}, "wrong_type"),
        (GOOD_HS | {"coherence": True}, "wrong_type"),
        (GOOD_HS | {"coherence": 5}, "out_of_range"),
        (GOOD_HS | {"coherence": -1}, "out_of_range"),
        (GOOD_HS | {"response": "  \n"}, "empty_response"),
        (GOOD_HS | {"prompt": ""}, "empty_turn"),
        (GOOD_HS | {"prompt": ["Hi?"]}, "wrong_type"),
        ("[1, 2]", "wrong_type"),
        ('{"prompt": "Hi?", ', "bad_json"),
        (BAD_UTF8, "bad_encoding"),
    ],
)
def test_helpsteer_bad_line(tmp_path: Path, bad, reason):
    path = write(tmp_path / "train.jsonl", [GOOD_HS, bad, GOOD_HS])
    expect_error("helpsteer", tmp_path, reason, path, 2, items=2)
    # ids are the row index, whatever was skipped
    assert [r.id for r in load_human_set("helpsteer", tmp_path, "s", on_error="skip").ratings] == ["s/0", "s/2"]


# --------------------------------------------------------------------------- arena human preference


def test_arena_preference_fixture_exact():
    hs = load_human_set("arena_human_preference", HUMAN / "arena_human_preference" / "jsonl", "ahp")
    assert (hs.kind, hs.ratings, hs.qualities) == ("preferences", [], {"preference": Scale(0, 1)})
    assert [(p.id, p.winner) for p in hs.pairs] == [
        ("ahp/101", "a"),
        ("ahp/102", "b"),
        ("ahp/103", "tie"),
        ("ahp/105", "tie"),
    ]
    p = hs.pairs[1]
    prompts = ["Write a haiku about rain.", 'Now make it about snow, with "quotes", please.']
    assert p.group == p.a.group == p.b.group == group("ahp", *prompts)
    assert (p.a.id, p.b.id) == ("ahp/102/a", "ahp/102/b")
    assert turns(p.a) == [
        ("user", prompts[0]),
        ("assistant", "Soft rain on the roof,\nthe gutters hum a low song,\npuddles hold the sky."),
        ("user", prompts[1]),
        ("assistant", '"White hush" on the roof'),
    ]
    assert turns(p.b)[1::2] == [("assistant", "Rain falls."), ("assistant", 'Snow, "quietly", falls.')]
    assert p.a.meta == {"model": "model-blue", "opponent": "model-green", "side": "a"}
    assert p.b.meta == {"model": "model-green", "opponent": "model-blue", "side": "b"}
    # 105: side a's first answer is null -> removed, the two user turns joined
    last = hs.pairs[3]
    assert turns(last.a) == [
        ("user", "Translate 'good morning' to French.\n\nAnd to Spanish?"),
        ("assistant", "Buenos días."),
    ]
    assert len(last.b.turns) == 4
    # 104: side a's final answer is null -> the pair is dropped
    assert hs.load["dropped"] == {"empty_response": 1}
    assert hs.load["policy"] == {"empty_turn_removed": 1, "merged_consecutive_turns": 1}
    assert (hs.load["source_records"], hs.items) == (5, 4)


def test_arena_preference_csv_equals_jsonl():
    from_csv = load_human_set("arena_human_preference", HUMAN / "arena_human_preference" / "csv", "ahp")
    from_jsonl = load_human_set("arena_human_preference", HUMAN / "arena_human_preference" / "jsonl", "ahp")
    assert from_csv == from_jsonl and from_csv.items == 4


def _real_rows() -> list[dict]:
    if not REAL_ARENA.is_file():
        pytest.skip("the real Arena human-preference slice is not in human/")
    return [json.loads(line) for line in REAL_ARENA.read_text(encoding="utf-8").splitlines()]


def test_arena_preference_real_slice_jsonl_and_csv(tmp_path: Path):
    rows = _real_rows()
    (tmp_path / "jsonl").mkdir()
    shutil.copy(REAL_ARENA, tmp_path / "jsonl" / "sample.jsonl")
    hs = load_human_set("arena_human_preference", tmp_path / "jsonl", "arena_hp")
    # README: a 180, b 170, tie 150 over the 500 rows; battle 16350735 (b won) has a null final response from a
    assert hs.load["source_records"] == 500 and hs.items == 499 and hs.load["skipped_total"] == 0
    assert hs.load["dropped"] == {"empty_response": 1}
    assert hs.load["policy"] == {"empty_turn_removed": 1, "merged_consecutive_turns": 1}
    assert Counter(p.winner for p in hs.pairs) == {"a": 180, "b": 169, "tie": 150}
    assert "arena_hp/16350735" not in {p.id for p in hs.pairs}
    assert sum(r["winner_model_b"] for r in rows if r["id"] == 16350735) == 1
    # battle 29500587: 8 turns, a's 7th answer is null -> 7 user + 7 assistant turns on a, 16 on b
    p = next(p for p in hs.pairs if p.id == "arena_hp/29500587")
    assert (len(p.a.turns), len(p.b.turns), p.winner) == (14, 16, "a")
    assert p.a.turns[12].text == "try with bayesian logistic regression\n\niplement it for bayesian logistic regression"
    # 80 multi-turn battles in the slice, less the dropped 16350735 (two turns)
    assert sum(len(p.b.turns) > 2 for p in hs.pairs) == 79
    # the same rows as the published CSV give the same set
    (tmp_path / "csv").mkdir()
    with open(tmp_path / "csv" / "train.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(rows[0].keys())
        w.writerows([[str(v) for v in r.values()] for r in rows])
    assert load_human_set("arena_human_preference", tmp_path / "csv", "arena_hp") == hs


GOOD_AHP = {
    "id": 1,
    "model_a": "m1",
    "model_b": "m2",
    "prompt": json.dumps(["q1", "q2"]),
    "response_a": json.dumps(["a1", "a2"]),
    "response_b": json.dumps(["b1", "b2"]),
    "winner_model_a": 0,
    "winner_model_b": 1,
    "winner_tie": 0,
}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (GOOD_AHP | {"id": 2, "response_b": json.dumps(["b1"])}, "turn_mismatch"),
        (GOOD_AHP | {"id": 2, "response_a": json.dumps(["a1", "a2", "a3"])}, "turn_mismatch"),
        (GOOD_AHP | {"id": 2, "winner_model_a": 1}, "bad_winner"),
        (GOOD_AHP | {"id": 2, "winner_model_b": 0}, "bad_winner"),
        (GOOD_AHP | {"id": 2, "winner_tie": 2}, "bad_winner"),
        (GOOD_AHP | {"id": 2, "winner_tie": "0"}, "wrong_type"),
        (GOOD_AHP | {"id": 2, "prompt": "[q1, q2]"}, "bad_list"),
        (GOOD_AHP | {"id": 2, "prompt": '"q1"'}, "wrong_type"),
        (GOOD_AHP | {"id": 2, "response_a": json.dumps(["a1", 7])}, "wrong_type"),
        (GOOD_AHP | {"id": 2, "prompt": ["q1", "q2"]}, "wrong_type"),
        (GOOD_AHP | {"id": True}, "wrong_type"),
        ({k: v for k, v in GOOD_AHP.items() if k != "model_b"} | {"id": 2}, "missing_field"),
        (GOOD_AHP | {"id": 2, "prompt": json.dumps(["q1", None])}, "empty_turn"),
        (GOOD_AHP | {"id": 2, "prompt": "[]", "response_a": "[]", "response_b": "[]"}, "empty_conversation"),
        (GOOD_AHP, "duplicate_id"),
        ('{"id": 2,', "bad_json"),
        (BAD_UTF8, "bad_encoding"),
    ],
)
def test_arena_preference_bad_row(tmp_path: Path, bad, reason):
    path = write(tmp_path / "train.jsonl", [GOOD_AHP, bad])
    expect_error("arena_human_preference", tmp_path, reason, path, 2)


def test_arena_preference_final_empty_response_is_a_counted_drop(tmp_path: Path):
    write(tmp_path / "train.jsonl", [GOOD_AHP, GOOD_AHP | {"id": 2, "response_b": json.dumps(["b1", "  "])}])
    hs = load_human_set("arena_human_preference", tmp_path, "s")
    assert [p.id for p in hs.pairs] == ["s/1"] and hs.load["dropped"] == {"empty_response": 1}


def _csv(path: Path, rows: list[list[str]], header=tuple(GOOD_AHP)) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows([list(header), *rows])
    return path


CSV_ROW = [str(v) for v in GOOD_AHP.values()]


def test_arena_preference_csv_errors_name_the_record_start_line(tmp_path: Path):
    multi = CSV_ROW[:3] + ['["line one\nline two", "q2"]'] + CSV_ROW[4:]  # a raw line break in the list text
    bad = ["3"] + CSV_ROW[1:6] + ["1", "1", "0"]
    path = _csv(tmp_path / "train.csv", [CSV_ROW, ["2", *multi[1:]], bad])
    # header 1, row 1 on line 2, row 2 on lines 3-4, the bad row starts on line 5
    expect_error("arena_human_preference", tmp_path, "bad_winner", path, 5, items=2)
    hs = load_human_set("arena_human_preference", tmp_path, "s", on_error="skip")
    assert hs.pairs[1].a.turns[0].text == "line one\nline two"

    path = _csv(tmp_path / "train.csv", [CSV_ROW, CSV_ROW[:5]])
    expect_error("arena_human_preference", tmp_path, "bad_csv", path, 3)
    path = _csv(tmp_path / "train.csv", [CSV_ROW[:6] + ["yes", "0", "0"], ["2", *CSV_ROW[1:]]])
    expect_error("arena_human_preference", tmp_path, "bad_winner", path, 2)
    path = _csv(tmp_path / "train.csv", [CSV_ROW])
    path.write_bytes(path.read_bytes() + b'3,m1,m2,"[""caf\xe9""]",x,x,0,0,1\n')
    expect_error("arena_human_preference", tmp_path, "bad_encoding", path, 3, items=1)


def test_arena_preference_broken_csv_files_raise_in_skip_mode(tmp_path: Path):
    _csv(tmp_path / "train.csv", [CSV_ROW], header=[c for c in GOOD_AHP if c != "winner_tie"])
    with pytest.raises(RecordError) as err:
        load_human_set("arena_human_preference", tmp_path, "s", on_error="skip")
    assert err.value.reason == "missing_field" and ":1:" in str(err.value) and "winner_tie" in str(err.value)
    path = _csv(tmp_path / "train.csv", [CSV_ROW])
    path.write_text(path.read_text() + '2,m1,m2,"[\n')
    with pytest.raises(RecordError) as err:
        load_human_set("arena_human_preference", tmp_path, "s", on_error="skip")
    assert err.value.reason == "bad_csv" and f"{path}:3" in str(err.value)


# --------------------------------------------------------------------------- chatbot arena (parquet)

MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])
ARENA_SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),
        ("model_a", pa.string()),
        ("model_b", pa.string()),
        ("winner", pa.string()),
        ("judge", pa.string()),
        ("conversation_a", pa.list_(MESSAGE)),
        ("conversation_b", pa.list_(MESSAGE)),
        ("turn", pa.int64()),
        ("language", pa.string()),
    ]
)


def battle(qid: str, winner: str, user: list[str], a: list[str | None], b: list[str | None], **kw) -> dict:
    def side(answers):
        msgs = []
        for u, ans in zip(user, answers):
            msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": ans}]
        return msgs

    row = {"question_id": qid, "model_a": "m-a", "model_b": "m-b", "winner": winner, "judge": "arena_user_1"}
    return row | {"conversation_a": side(a), "conversation_b": side(b), "turn": len(user), "language": "English"} | kw


BATTLES = [
    battle("q1", "model_a", ["Capital of Peru?"], ["Lima."], ["Quito."]),
    battle("q2", "tie (bothbad)", ["Count to two.", "Now to three."], ["1 2", "1 2 3 4"], ["2 1", "3"]),
    battle("q3", "model_b", ["Spell cat."], [None], ["C-A-T."]),
    battle("q4", "tie", ["Hello!"], ["Hi there."], ["Hello to you."]),
    battle("q5", "model_b", ["Colour of grass?"], ["Blue."], ["Green."]),
]


def _parquet(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=ARENA_SCHEMA), path)
    return path


def test_chatbot_arena_parquet_exact(tmp_path: Path):
    _parquet(BATTLES, tmp_path / "data" / "train-00000-of-00001.parquet")
    hs = load_human_set("chatbot_arena", tmp_path, "ca")
    assert [(p.id, p.winner) for p in hs.pairs] == [("ca/q1", "a"), ("ca/q2", "tie"), ("ca/q4", "tie"), ("ca/q5", "b")]
    p = hs.pairs[1]
    assert p.group == p.a.group == p.b.group == group("ca", "Count to two.", "Now to three.")
    assert turns(p.a) == [
        ("user", "Count to two."),
        ("assistant", "1 2"),
        ("user", "Now to three."),
        ("assistant", "1 2 3 4"),
    ]
    assert turns(p.b)[-1] == ("assistant", "3") and p.b.meta == {"model": "m-b", "opponent": "m-a", "side": "b"}
    assert hs.load["dropped"] == {"null_content": 1}
    assert hs.load["policy"] == {"tie_bothbad": 1}
    assert hs.qualities == {"preference": Scale(0, 1)} and hs.load["source_records"] == 5
    # the same rows as JSON lines give the same set
    write(tmp_path / "j" / "train.jsonl", BATTLES)
    assert load_human_set("chatbot_arena", tmp_path / "j", "ca") == hs


def test_chatbot_arena_consecutive_messages_are_merged(tmp_path: Path):
    row = battle("q1", "model_a", ["Hi"], ["Hello"], ["Hey"])
    row["conversation_a"] = row["conversation_a"] + [{"role": "assistant", "content": "How can I help?"}]
    _parquet([row], tmp_path / "t.parquet")
    hs = load_human_set("chatbot_arena", tmp_path, "ca")
    assert turns(hs.pairs[0].a)[-1] == ("assistant", "Hello\n\nHow can I help?")
    assert hs.load["policy"] == {"merged_consecutive_turns": 1}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (battle("x", "model_c", ["Hi"], ["a"], ["b"]), "bad_value"),
        (battle("x", "model_a", ["Hi"], ["a"], ["b"], question_id="a/b"), "bad_value"),
        (
            battle("x", "model_a", ["Hi"], ["a"], ["b"], conversation_b=[{"role": "system", "content": "Hi"}]),
            "bad_role",
        ),
        (
            battle("x", "model_a", ["Hi"], ["a"], ["b"], conversation_b=[{"role": "user", "content": "Hi"}]),
            "last_turn_not_response",
        ),
        (
            battle(
                "x",
                "model_a",
                ["Hi"],
                ["a"],
                ["b"],
                conversation_b=[{"role": "user", "content": "Yo"}, {"role": "assistant", "content": "b"}],
            ),
            "prompt_mismatch",
        ),
        (battle("q1", "model_a", ["Hi"], ["a"], ["b"]), "duplicate_id"),
    ],
)
def test_chatbot_arena_bad_row(tmp_path: Path, bad, reason):
    path = _parquet([BATTLES[0], bad], tmp_path / "t.parquet")
    with pytest.raises(RecordError) as err:
        load_human_set("chatbot_arena", tmp_path, "s")
    assert err.value.reason == reason and f"{path}:1" in str(err.value) and "row 1:" in str(err.value)
    hs = load_human_set("chatbot_arena", tmp_path, "s", on_error="skip")
    assert hs.load["skipped"] == {reason: 1} and hs.items == 1


@pytest.mark.parametrize(
    "bad, reason",
    [
        ('{"question_id": "x"', "bad_json"),
        (BAD_UTF8, "bad_encoding"),
        (battle("x", "model_a", ["Hi"], ["a"], ["b"], model_b=7), "wrong_type"),
        (battle("x", "model_a", ["Hi"], ["a"], ["b"], conversation_a="Hi"), "wrong_type"),
    ],
)
def test_chatbot_arena_bad_json_line(tmp_path: Path, bad, reason):
    path = write(tmp_path / "train.jsonl", [BATTLES[0], bad])
    expect_error("chatbot_arena", tmp_path, reason, path, 2)


# --------------------------------------------------------------------------- HH-RLHF pairs


def test_hh_pairs_fixture_exact(tmp_path: Path):
    hs = load_human_set("hh_rlhf_pairs", HUMAN / "hh_rlhf_pairs", "hh")
    assert [(p.id, p.winner) for p in hs.pairs] == [
        ("hh/harmless-base/train/1", "a"),
        ("hh/harmless-base/train/2", "a"),
    ]
    p = hs.pairs[1]
    prefix = ["Recommend a board game.", "For two players, try a card-drafting game.", "Something for six people?"]
    assert (
        p.group
        == p.a.group
        == p.b.group
        == group("hh", *(f"{r}\x1e{t}" for r, t in zip(["user", "assistant", "user"], prefix)))
    )
    assert turns(p.a)[:3] == turns(p.b)[:3] == list(zip(["user", "assistant", "user"], prefix))
    assert (turns(p.a)[-1], turns(p.b)[-1]) == (
        ("assistant", "A party word game works well for six."),
        ("assistant", "I do not know."),
    )
    assert p.a.meta == {"subset": "harmless-base", "split": "train", "side": "chosen"}
    assert hs.load["dropped"] == {"empty_response": 1, "identical_pair": 1} and hs.load["source_records"] == 4
    (tmp_path / "harmless-base").mkdir()
    data = (HUMAN / "hh_rlhf_pairs" / "harmless-base" / "train.jsonl").read_bytes()
    with gzip.open(tmp_path / "harmless-base" / "train.jsonl.gz", "wb") as fh:
        fh.write(data)
    assert load_human_set("hh_rlhf_pairs", tmp_path, "hh") == hs


HH = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (HH | {"rejected": "\n\nHuman: Hey\n\nAssistant: Go away."}, "prefix_mismatch"),
        ({"chosen": HH["chosen"]}, "missing_field"),
        (HH | {"chosen": ["Hi"]}, "wrong_type"),
        (HH | {"rejected": "\n\nHuman: Hi\n\nAssistant: Go away.\n\nHuman: ok"}, "last_turn_not_response"),
        (HH | {"chosen": "Hi\n\nAssistant: Hello!"}, "text_before_first_marker"),
        (HH | {"chosen": ""}, "empty_conversation"),
        ('{"chosen": ', "bad_json"),
        (BAD_UTF8, "bad_encoding"),
    ],
)
def test_hh_pairs_bad_line(tmp_path: Path, bad, reason):
    path = write(tmp_path / "helpful-base" / "train.jsonl", [HH, bad])
    expect_error("hh_rlhf_pairs", tmp_path, reason, path, 2)


def test_hh_pairs_merges_consecutive_turns_per_side(tmp_path: Path):
    two = "\n\nHuman: Hi\n\nHuman: Are you there?\n\nAssistant: "
    write(tmp_path / "train.jsonl", [{"chosen": two + "Yes.", "rejected": two + "No."}])
    hs = load_human_set("hh_rlhf_pairs", tmp_path, "hh")
    assert turns(hs.pairs[0].a) == [("user", "Hi\n\nAre you there?"), ("assistant", "Yes.")]
    assert hs.pairs[0].id == "hh/default/train/1" and hs.load["policy"] == {"merged_consecutive_turns": 2}


# --------------------------------------------------------------------------- USR


def test_usr_fixture_exact():
    hs = load_human_set("usr", HUMAN / "usr", "tc")
    assert hs.qualities == {
        "understandable": Scale(0, 1),
        "natural": Scale(1, 3),
        "maintains_context": Scale(1, 3),
        "engaging": Scale(1, 3),
        "uses_knowledge": Scale(0, 1),
        "overall": Scale(1, 5),
    }
    assert [r.id for r in hs.ratings] == ["tc/0/0", "tc/0/1", "tc/1/0"]
    lines = ["hi , do you like jazz ?", "i do , mostly the old records .", "which one is your favourite ?"]
    first = hs.ratings[0].conversation
    assert turns(first) == [
        ("user", lines[0]),
        ("assistant", lines[1]),
        ("user", lines[2]),
        ("assistant", "probably an old trumpet record my uncle gave me .\n"),
    ]
    assert first.context == "jazz grew out of blues and ragtime early in the twentieth century ."
    assert first.meta == {"model": "Original Ground Truth", "annotators": ["ann1", "ann2", "ann3"]}
    assert first.group == hs.ratings[1].conversation.group == group("tc", *lines)
    overall = hs.ratings[0].qualities["overall"]
    assert (overall.values, overall.mean, overall.normalised) == ((4.0, 5.0, 3.0), 4.0, 0.75)
    assert math.isclose(overall.spread, math.sqrt(2 / 3))
    argmax = hs.ratings[1].qualities
    assert argmax["natural"].values == (2.0, 1.0) and "uses_knowledge" not in argmax
    # roles are assigned backwards: the last context line is the user's
    last = hs.ratings[2].conversation
    assert turns(last) == [
        ("assistant", "what are you up to today ?"),
        ("user", "i am baking bread ."),
        ("assistant", "that sounds lovely , what kind ?"),
    ]
    assert last.context is None and last.group == group("tc", "what are you up to today ?", "i am baking bread .")
    assert hs.load["values_skipped"] == {"natural": 1, "uses_knowledge": 3}
    assert hs.load["policy"] == {"empty_context_line": 2, "quality_without_values": 1}
    assert hs.load["dropped"] == {} and hs.load["source_records"] == 2


USR_RESPONSE = {
    "response": "sure .",
    "model": "m",
    "Understandable": [1, 1, 1],
    "Natural": [3, 2, 3],
    "Maintains Context": [3, 3, 3],
    "Engaging": [2, 2, 2],
    "Uses Knowledge": [0, 0, 1],
    "Overall": [4, 4, 5],
}


def _usr_item(**kw) -> dict:
    return {"context": "hello there", "fact": "a fact", "responses": [USR_RESPONSE | kw]}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (_usr_item(Natural=[3, 4, 3]), "out_of_range"),
        (_usr_item(Overall=[4, True, 5]), "wrong_type"),
        (_usr_item(Overall="4"), "wrong_type"),
        (
            {
                "context": "hello there",
                "fact": "f",
                "responses": [{k: v for k, v in USR_RESPONSE.items() if k != "Overall"}],
            },
            "missing_field",
        ),
        (_usr_item(response=" \n"), "empty_response"),
        (_usr_item(response=3), "wrong_type"),
        ({"context": " \n ", "fact": "f", "responses": [USR_RESPONSE]}, "empty_conversation"),
        ({"context": "hi", "fact": "f", "responses": "none"}, "wrong_type"),
        ("the item", "wrong_type"),
    ],
)
def test_usr_bad_item_names_its_first_line(tmp_path: Path, bad, reason):
    path = tmp_path / "tc_usr_data.json"
    good = json.dumps(_usr_item(), indent=2)
    path.write_text("[\n" + good + ",\n" + json.dumps(bad, indent=2) + ",\n" + good + "\n]\n")
    # "[" on line 1, the good item from line 2, the bad one starts on the line after the good one's last
    expect_error("usr", tmp_path, reason, path, good.count("\n") + 3, items=2)


def test_usr_invalid_utf8_and_broken_json(tmp_path: Path):
    path = tmp_path / "pc_usr_data.json"
    good = json.dumps(_usr_item(), indent=2).encode()
    path.write_bytes(b"[\n" + good + b",\n" + good.replace(b"a fact", b"caf\xe9") + b"\n]\n")
    expect_error("usr", tmp_path, "bad_encoding", path, good.count(b"\n") + 3)
    path.write_bytes(b"[\n" + good + b",\n" + good[:-3] + b"\n]\n")
    with pytest.raises(RecordError) as err:  # the file cannot be split into items: raised whatever on_error says
        load_human_set("usr", tmp_path, "s", on_error="skip")
    assert err.value.reason == "bad_json" and f"{path}:" in str(err.value)
    path.write_text(json.dumps({"context": "hi"}))
    with pytest.raises(RecordError) as err:
        load_human_set("usr", tmp_path, "s", on_error="skip")
    assert err.value.reason == "wrong_type" and f"{path}:1" in str(err.value)


# --------------------------------------------------------------------------- FED


def test_fed_fixture_exact():
    hs = load_human_set("fed", HUMAN / "fed", "fed")
    assert hs.qualities == {
        "interesting": Scale(0, 2),
        "engaging": Scale(0, 2),
        "specific": Scale(0, 2),
        "relevant": Scale(0, 2),
        "correct": Scale(0, 2),
        "semantically_appropriate": Scale(0, 2),
        "understandable": Scale(0, 1),
        "fluent": Scale(0, 2),
        "overall": Scale(0, 4),
    }
    assert [r.id for r in hs.ratings] == ["fed/0", "fed/2", "fed/3"]  # fed/1 is dialog-level
    first = hs.ratings[0].conversation
    assert turns(first) == [
        ("user", "Hi there!"),
        ("assistant", "Hello! How is your day going?"),
        ("user", "Pretty good, I just got a new bike."),
        ("assistant", "Nice! What kind of bike is it?"),
    ]
    assert first.meta == {"system": "Meena"}
    assert first.group == group("fed", *(f"{r}\x1e{t}" for r, t in turns(first)[:-1]))
    correct = hs.ratings[0].qualities["correct"]
    assert (correct.values, correct.mean, correct.normalised) == ((2.0, 2.0, 2.0, 1.0), 1.75, 0.875)
    assert math.isclose(correct.spread, math.sqrt(3) / 4)
    overall = hs.ratings[0].qualities["overall"]
    assert (overall.mean, overall.normalised) == (3.2, 0.8)
    # consecutive User lines merged; the context ends on a System line: the response stays its own turn
    assert turns(hs.ratings[1].conversation) == [
        ("user", "I am bored.\n\nAny ideas?"),
        ("assistant", "You could read a book."),
        ("assistant", "Or go for a walk outside."),
    ]
    third = hs.ratings[2]
    assert turns(third.conversation)[-1] == ("assistant", "I rest my circuits at night.")
    assert "understandable" not in third.qualities and len(third.qualities) == 8
    assert hs.load["dropped"] == {"dialog_level": 1}
    assert hs.load["values_skipped"] == {"correct": 1, "understandable": 5}
    assert hs.load["policy"] == {
        "merged_consecutive_turns": 1,
        "quality_without_values": 1,
        "response_after_system_turn": 1,
        "unknown_quality": 1,
    }


FED_ANN = {
    q: [1, 1, 1, 1, 1]
    for q in [
        "Interesting",
        "Engaging",
        "Specific",
        "Relevant",
        "Correct",
        "Semantically appropriate",
        "Understandable",
        "Fluent",
        "Overall",
    ]
}
FED_ITEM = {"context": "User: Hi", "response": "System: Hello", "system": "Meena", "annotations": FED_ANN}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (FED_ITEM | {"context": "User: Hi\nHow are you?"}, "bad_speaker"),
        (FED_ITEM | {"response": "User: Hello"}, "bad_speaker"),
        (FED_ITEM | {"context": "System: Hi"}, "no_request"),
        (FED_ITEM | {"response": "System: "}, "empty_response"),
        (FED_ITEM | {"annotations": {k: v for k, v in FED_ANN.items() if k != "Fluent"}}, "missing_field"),
        (FED_ITEM | {"annotations": FED_ANN | {"Overall": [1, 5, 1, 1, 1]}}, "out_of_range"),
        (FED_ITEM | {"annotations": FED_ANN | {"Fluent": [1, [2], 1, 1, 1]}}, "wrong_type"),
        (FED_ITEM | {"system": None}, "missing_field"),
        (FED_ITEM | {"annotations": []}, "wrong_type"),
    ],
)
def test_fed_bad_item_names_its_first_line(tmp_path: Path, bad, reason):
    path = tmp_path / "fed_data.json"
    path.write_text("[" + json.dumps(FED_ITEM) + ",\n\n" + json.dumps(bad) + "\n]")
    expect_error("fed", tmp_path, reason, path, 3)


def test_fed_invalid_utf8_and_broken_json(tmp_path: Path):
    path = tmp_path / "fed_data.json"
    item = json.dumps(FED_ITEM).encode()
    path.write_bytes(b"[" + item + b",\n" + item.replace(b"Hello", b"H\xe9llo") + b"]")
    expect_error("fed", tmp_path, "bad_encoding", path, 2)
    path.write_bytes(b"[" + item + b",\n" + item + b"\n" + item + b"]")
    with pytest.raises(RecordError) as err:
        load_human_set("fed", tmp_path, "s", on_error="skip")
    assert err.value.reason == "bad_json" and f"{path}:3" in str(err.value)


# --------------------------------------------------------------------------- gold


def test_gold_fixture_exact():
    hs = load_human_set("gold", HUMAN / "gold", "gold")
    assert hs.qualities == {"helpfulness": Scale(1, 5), "safe": Scale(0, 1), "on topic": Scale(0, 1)}
    assert [r.id for r in hs.ratings] == ["gold/q1-r1", "gold/q1-r2", "gold/story-3"]
    novel = "user\x1eCan you recommend a sci-fi novel?"
    assert [r.conversation.group for r in hs.ratings] == [group("gold", novel)] * 2 + ["gold/story"]
    help1 = hs.ratings[0].qualities["helpfulness"]
    assert (help1.values, help1.mean, help1.normalised) == ((4.0, 5.0, 3.0), 4.0, 0.75)
    assert math.isclose(help1.spread, math.sqrt(2 / 3))
    assert hs.ratings[0].qualities["safe"].values == (1.0,) and hs.ratings[0].qualities["safe"].spread == 0.0
    assert hs.ratings[1].conversation.meta == {"source": "invented"}
    story = hs.ratings[2]
    assert story.conversation.context == "Mara lifted the mat and found the brass key."
    assert story.qualities["on topic"].normalised == 0.75
    assert turns(story.conversation) == [("user", "Who found the key?"), ("assistant", "Mara found it under the mat.")]


GOLD = {
    "id": "a",
    "turns": [{"role": "user", "text": "q"}, {"role": "assistant", "text": "r"}],
    "ratings": {"helpful": {"scores": [1, 2], "min": 1, "max": 4}},
}


@pytest.mark.parametrize(
    "bad, reason",
    [
        (GOLD | {"id": "b", "rating": {}}, "unknown_field"),
        (GOLD | {"id": "b", "ratings": {"helpful": {"scores": [1], "min": 1, "max": 4, "n": 1}}}, "unknown_field"),
        (GOLD | {"id": "b", "ratings": {"helpful": {"scores": [1], "score": 1, "min": 1, "max": 4}}}, "bad_value"),
        (GOLD | {"id": "b", "ratings": {"helpful": {"scores": [1], "max": 4}}}, "missing_field"),
        (GOLD | {"id": "b", "ratings": {"x": {"score": 1, "min": 2, "max": 2}}}, "bad_value"),
        (GOLD | {"id": "b", "ratings": {"helpful": {"scores": [1, 5], "min": 1, "max": 4}}}, "out_of_range"),
        (GOLD | {"id": "b", "ratings": {"helpful": {"scores": [1, "n/a"], "min": 1, "max": 4}}}, "wrong_type"),
        (GOLD | {"id": "b", "ratings": {"helpful": {"scores": [], "min": 1, "max": 4}}}, "bad_value"),
        (GOLD | {"id": "b", "ratings": {"helpful": {"scores": [1, 2], "min": 1, "max": 5}}}, "scale_mismatch"),
        (GOLD | {"id": "b", "ratings": {}}, "bad_value"),
        (GOLD | {"id": "b", "turns": GOLD["turns"][:1]}, "last_turn_not_response"),
        (GOLD | {"id": "b", "turns": [GOLD["turns"][0], {"role": "assistant", "text": ""}]}, "empty_response"),
        (GOLD | {"id": "b/c"}, "bad_value"),
        (GOLD | {"id": 7}, "wrong_type"),
        (GOLD, "duplicate_id"),
        ('{"id": "b"', "bad_json"),
        (BAD_UTF8, "bad_encoding"),
    ],
)
def test_gold_bad_line(tmp_path: Path, bad, reason):
    path = write(tmp_path / "gold.jsonl", [GOLD, bad])
    expect_error("gold", tmp_path, reason, path, 2)


def test_gold_errors_name_the_other_line(tmp_path: Path):
    write(tmp_path / "gold.jsonl", ["", GOLD, GOLD])
    with pytest.raises(RecordError) as err:
        load_human_set("gold", tmp_path, "s")
    assert f"{tmp_path / 'gold.jsonl'}:3" in str(err.value) and "already used at gold.jsonl:2" in str(err.value)
    write(tmp_path / "gold.jsonl", [GOLD, GOLD | {"id": "b", "ratings": {"helpful": {"score": 2, "min": 0, "max": 4}}}])
    with pytest.raises(RecordError) as err:
        load_human_set("gold", tmp_path, "s")
    assert err.value.reason == "scale_mismatch" and "1..4 used at gold.jsonl:1" in str(err.value)


def test_human_set_kind_is_checked():
    with pytest.raises(ValueError):
        HumanSet(name="s", format="gold", kind="scores")
