"""The CoQA loader: the original JSON (coqa-*-v1.0.json) and the Hub parquet of stanfordnlp/coqa."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, load

from explainft.datasets.prepare import prepare
from explainft.errors import ConfigError, RecordError
from explainft.records import Conversation, read_jsonl

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

VALID = FIXTURES / "coqa" / "valid"
MALFORMED = FIXTURES / "coqa" / "malformed"
BROKEN = FIXTURES / "coqa" / "broken"

# the schema of stanfordnlp/coqa (data/{train,validation}-00000-of-00001.parquet)
HUB_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("story", pa.string()),
        ("questions", pa.list_(pa.string())),
        (
            "answers",
            pa.struct(
                [
                    ("input_text", pa.list_(pa.string())),
                    ("answer_start", pa.list_(pa.int32())),
                    ("answer_end", pa.list_(pa.int32())),
                ]
            ),
        ),
    ]
)


def stories(path: Path) -> list:
    return json.loads(path.read_text(encoding="utf-8"))["data"]


def hub_row(story: dict) -> dict:
    """A story as the Hub stores it: parallel lists in turn order, no id."""
    answers = sorted(story["answers"], key=lambda a: a["turn_id"])
    return {
        "source": story["source"],
        "story": story["story"],
        "questions": [q["input_text"] for q in sorted(story["questions"], key=lambda q: q["turn_id"])],
        "answers": {
            "input_text": [a["input_text"] for a in answers],
            "answer_start": [a["span_start"] for a in answers],
            "answer_end": [a["span_end"] for a in answers],
        },
    }


def write_parquet(path: Path, rows: list[dict], schema=HUB_SCHEMA) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def by_id(convs):
    return {c.id: c for c in convs}


def pairs(conv: Conversation) -> list[tuple[str, str]]:
    return [(t.role, t.text) for t in conv.turns]


# --------------------------------------------------------------------------- original JSON


def test_final_rates_the_last_answer_with_the_whole_history():
    convs, ctx = load("coqa", VALID)
    got = by_id(convs)
    assert list(got) == [
        "coqa/3mctestkite000000000000000004",
        "coqa/3wikibridge0000000000000000001",
        "coqa/3cnnbakery00000000000000000002",
        "coqa/3gutenbergrain000000000000003",
    ]
    wiki = got["coqa/3wikibridge0000000000000000001"]
    assert pairs(wiki) == [
        ("user", "What crosses the Vell river?"),
        ("assistant", "The Lindqvist Bridge"),
        ("user", "When was it finished?"),
        ("assistant", "1871"),
        ("user", "Who designed it?"),
        ("assistant", "unknown"),
    ]
    story = stories(VALID / "coqa-train-v1.0.json")[0]["story"]
    assert wiki.context == story
    assert wiki.meta == {
        "story_id": "3wikibridge0000000000000000001",
        "domain": "wikipedia",
        "split": "train",
        "filename": "Lindqvist_Bridge.txt",
        "name": "Lindqvist_Bridge.txt",
        "source": {"file": "coqa-train-v1.0.json", "story": 0},
        "story_sha256": hashlib.sha256(story.encode("utf-8")).hexdigest(),
        "n_turns": 3,
        "turn": 3,
    }
    assert "name" not in got["coqa/3gutenbergrain000000000000003"].meta  # name is read when present
    assert ctx.source_records == 4 and ctx.summary()["skipped_total"] == 0
    assert ctx.files == ["coqa-dev-v1.0.json", "coqa-train-v1.0.json"]  # SOURCE.json is not read


def test_answers_are_aligned_by_turn_id_not_list_position():
    # the fixture lists this story's answers in the order 2, 1, 3, 5, 4
    cnn = by_id(load("coqa", VALID)[0])["coqa/3cnnbakery00000000000000000002"]
    assert [t.text for t in cnn.turns] == [
        "Where is the bakery?",
        "Porto",
        "When does it open?",
        "at four in the morning",
        "How long has it done so?",
        "ninety years",
        "What do customers buy?",
        "Unknown.",
        "Who owns it?",
        "Rosa Almeida",
    ]


def test_additional_answers_are_counted_in_meta():
    dev = by_id(load("coqa", VALID)[0])["coqa/3mctestkite000000000000000004"]
    assert dev.meta["n_additional_answers"] == 3
    assert dev.meta["split"] == "dev"
    assert all("n_additional_answers" not in c.meta for c in load("coqa", VALID, {"splits": ["train"]})[0])


def test_prefixes_make_one_conversation_per_answer():
    convs, ctx = load("coqa", VALID, {"items": "prefixes"})
    assert len(convs) == 4 + 3 + 5 + 1
    wiki = [c for c in convs if c.meta["story_id"] == "3wikibridge0000000000000000001"]
    assert [c.id for c in wiki] == [f"coqa/3wikibridge0000000000000000001/t{k}" for k in (1, 2, 3)]
    assert [len(c.turns) for c in wiki] == [2, 4, 6]
    assert [c.meta["turn"] for c in wiki] == [1, 2, 3]
    assert all(c.meta["n_turns"] == 3 for c in wiki)
    assert pairs(wiki[1]) == pairs(wiki[2])[:4]
    assert all(c.context == wiki[0].context for c in wiki)
    # "unknown" (wiki t3) and "Unknown." (cnn t4) are kept and counted
    assert ctx.policy["unknown_answer"] == 2


def test_the_items_of_one_story_share_its_group():
    # configs/paper.yaml rates every prefix: the split keeps a group on one side, so a story never straddles it
    convs, _ = load("coqa", VALID, {"items": "prefixes"})
    groups: dict[str, set[str]] = {}
    for c in convs:
        groups.setdefault(c.meta["story_id"], set()).add(c.group)
    assert all(len(g) == 1 for g in groups.values()) and len(groups) == 4
    assert len(set().union(*groups.values())) == 4  # and no two stories share one
    final = {c.meta["story_id"]: c.group for c in load("coqa", VALID)[0]}
    assert final == {s: next(iter(g)) for s, g in groups.items()}  # the same group as the story's final item


def test_unknown_answers_are_kept_and_counted_on_the_rated_answer():
    convs, ctx = load("coqa", VALID)
    assert by_id(convs)["coqa/3wikibridge0000000000000000001"].response.text == "unknown"
    assert ctx.policy["unknown_answer"] == 1  # the cnn "Unknown." is history here, not the rated answer


def test_max_turns_keeps_the_last_pairs():
    convs, ctx = load("coqa", VALID, {"max_turns": 2})
    cnn = by_id(convs)["coqa/3cnnbakery00000000000000000002"]
    assert [t.text for t in cnn.turns] == ["What do customers buy?", "Unknown.", "Who owns it?", "Rosa Almeida"]
    assert cnn.meta["n_turns"] == 5 and cnn.meta["turn"] == 5
    assert cnn.context.startswith("(CNN) -- A small bakery in Porto")
    assert len(by_id(convs)["coqa/3gutenbergrain000000000000003"].turns) == 2
    assert ctx.policy["truncated_history"] == 3  # mctest (4 pairs), wiki (3), cnn (5); not gutenberg (1)

    convs, ctx = load("coqa", VALID, {"max_turns": 1, "items": "prefixes"})
    assert all(len(c.turns) == 2 for c in convs)
    assert ctx.policy["truncated_history"] == 13 - 4  # every prefix but each story's first


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, True])
def test_bad_max_turns(bad):
    with pytest.raises(ConfigError) as e:
        load("coqa", VALID, {"max_turns": bad})
    assert e.value.key == "sources.coqa.options.max_turns"


def test_splits_option():
    convs, ctx = load("coqa", VALID, {"splits": ["dev"]})
    assert [c.meta["split"] for c in convs] == ["dev"]
    assert ctx.files == ["coqa-dev-v1.0.json"]
    with pytest.raises(RecordError) as e:
        load("coqa", VALID, {"splits": ["validation"]})  # the JSON dev split is called dev
    assert e.value.reason == "missing_file"
    for bad in ([], [None], "dev"):
        with pytest.raises(ConfigError) as ce:
            load("coqa", VALID, {"splits": bad})
        assert ce.value.key == "sources.coqa.options.splits"
    with pytest.raises(ConfigError):
        load("coqa", VALID, {"items": "all"})


# story index in tests/fixtures/coqa/malformed/coqa-train-v1.0.json -> (reason, field)
MALFORMED_STORIES = {
    1: ("missing_answer", "answers"),  # 3 questions, 2 answers
    2: ("missing_field", "story"),
    3: ("turn_id_gap", "questions[2].turn_id"),  # turn ids 1, 2, 4
    4: ("duplicate_turn_id", "answers[2].turn_id"),
    5: ("turn_mismatch", "answers[3].turn_id"),  # an answer for turn 5 of 3
    6: ("wrong_type", "questions"),
    7: ("wrong_type", "answers[0].span_start"),
    8: ("wrong_type", None),  # a string, not a story
    9: ("duplicate_turn_id", "questions[2].turn_id"),
    10: ("empty_turn", "answers[1].input_text"),
}


@pytest.mark.parametrize("index", sorted(MALFORMED_STORIES))
def test_malformed_story_raises_naming_story_and_field(tmp_path, index):
    data = stories(MALFORMED / "coqa-train-v1.0.json")
    path = tmp_path / "coqa-train-v1.0.json"
    path.write_text(json.dumps({"version": "1.0", "data": [data[0], data[index]]}), encoding="utf-8")
    with pytest.raises(RecordError) as e:
        load("coqa", tmp_path)
    reason, field = MALFORMED_STORIES[index]
    assert (e.value.reason, e.value.field, e.value.line) == (reason, field, 1)
    assert e.value.file == str(path)
    assert "story 1: " in str(e.value)
    if isinstance(data[index], dict):
        assert e.value.record == data[index]["id"]


def test_malformed_file_in_skip_mode_counts_every_bad_story():
    convs, ctx = load("coqa", MALFORMED, on_error="skip")
    assert [c.id for c in convs] == ["coqa/good0", "coqa/good11"]
    expected: dict[str, int] = {}
    for reason, _ in MALFORMED_STORIES.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(ctx.skipped) == expected
    assert ctx.source_records == 12


def test_a_broken_document_fails_as_a_whole_even_in_skip_mode(tmp_path):
    with pytest.raises(RecordError) as e:
        load("coqa", BROKEN, on_error="skip")
    assert e.value.reason == "bad_json" and e.value.file.endswith("coqa-dev-v1.0.json") and e.value.line is None

    raw = (VALID / "coqa-dev-v1.0.json").read_bytes().replace(b"Ana had", b"An\xe1 had")
    (tmp_path / "coqa-dev-v1.0.json").write_bytes(raw)
    with pytest.raises(RecordError) as e:
        load("coqa", tmp_path, on_error="skip")
    assert e.value.reason == "bad_encoding"

    for doc, reason in (([], "wrong_type"), ({"version": "1.0"}, "missing_field"), ({"data": {}}, "wrong_type")):
        (tmp_path / "coqa-dev-v1.0.json").write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(RecordError) as e:
            load("coqa", tmp_path, on_error="skip")
        assert e.value.reason == reason and e.value.file == str(tmp_path / "coqa-dev-v1.0.json")


# --------------------------------------------------------------------------- Hub parquet


@pytest.fixture
def hub_dir(tmp_path) -> Path:
    """The valid JSON fixtures converted to the Hub's parquet files (train, validation)."""
    write_parquet(
        tmp_path / "data" / "train-00000-of-00001.parquet",
        [hub_row(s) for s in stories(VALID / "coqa-train-v1.0.json")],
    )
    write_parquet(
        tmp_path / "data" / "validation-00000-of-00001.parquet",
        [hub_row(s) for s in stories(VALID / "coqa-dev-v1.0.json")],
    )
    return tmp_path


def test_parquet_has_the_hub_schema(hub_dir):
    schema = pq.read_schema(hub_dir / "data" / "train-00000-of-00001.parquet")
    assert schema.names == ["source", "story", "questions", "answers"]
    assert schema.field("answers").type.field("answer_start").type == pa.list_(pa.int32())
    assert schema.field("answers").type.field("answer_end").type == pa.list_(pa.int32())


@pytest.mark.parametrize("items", ["final", "prefixes"])
def test_json_and_parquet_give_the_same_conversations(hub_dir, items):
    from_json, _ = load("coqa", VALID, {"items": items})
    from_hub, ctx = load("coqa", hub_dir, {"items": items})
    assert len(from_hub) == len(from_json)
    key = lambda c: (c.meta["story_sha256"], c.meta["turn"])  # noqa: E731
    hub = {key(c): c for c in from_hub}
    for c in from_json:
        h = hub[key(c)]
        assert h.turns == c.turns
        assert h.context == c.context
        assert h.meta["domain"] == c.meta["domain"]
        assert h.meta["n_turns"] == c.meta["n_turns"]
    assert ctx.policy["unknown_answer"] == (1 if items == "final" else 2)


def test_parquet_ids_meta_and_splits(hub_dir):
    convs, ctx = load("coqa", hub_dir)
    got = by_id(convs)
    assert list(got) == [
        "coqa/train-00000-of-00001/0",
        "coqa/train-00000-of-00001/1",
        "coqa/train-00000-of-00001/2",
        "coqa/validation-00000-of-00001/0",
    ]
    c = got["coqa/train-00000-of-00001/1"]
    assert c.meta == {
        "domain": "cnn",
        "split": "train",
        "source": {"file": "data/train-00000-of-00001.parquet", "row": 1},
        "story_sha256": hashlib.sha256(c.context.encode("utf-8")).hexdigest(),
        "n_turns": 5,
        "turn": 5,
    }
    assert ctx.files == ["data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet"]
    convs, _ = load("coqa", hub_dir, {"splits": ["validation"], "items": "prefixes"})
    assert [c.id for c in convs] == [f"coqa/validation-00000-of-00001/0/t{k}" for k in (1, 2, 3, 4)]


def test_parquet_converted_layout(tmp_path):
    """refs/convert/parquet names files <split>/0000.parquet: the split comes from the folder."""
    rows = [hub_row(s) for s in stories(VALID / "coqa-train-v1.0.json")]
    write_parquet(tmp_path / "default" / "train" / "0000.parquet", rows)
    write_parquet(tmp_path / "default" / "validation" / "0000.parquet", rows[:1])
    convs, _ = load("coqa", tmp_path)
    assert [c.id for c in convs] == [
        "coqa/train-0000/0",
        "coqa/train-0000/1",
        "coqa/train-0000/2",
        "coqa/validation-0000/0",
    ]
    assert [c.meta["split"] for c in convs] == ["train"] * 3 + ["validation"]


def test_parquet_is_read_in_batches(tmp_path, monkeypatch):
    import explainft.datasets.coqa as coqa

    monkeypatch.setattr(coqa, "BATCH_ROWS", 2)
    row = hub_row(stories(VALID / "coqa-train-v1.0.json")[2])
    write_parquet(tmp_path / "train-00000-of-00001.parquet", [row] * 5)
    convs, _ = load("coqa", tmp_path)
    assert [c.meta["source"]["row"] for c in convs] == [0, 1, 2, 3, 4]


# row of the malformed parquet -> (reason, field)
def _malformed_rows() -> list[tuple[dict, tuple[str, str | None]]]:
    good = hub_row(stories(VALID / "coqa-train-v1.0.json")[0])
    cases = []

    def case(expect, **change):
        row = copy.deepcopy(good)
        for key, value in change.items():
            if key.startswith("a_"):
                row["answers"][key[2:]] = value
            else:
                row[key] = value
        cases.append((row, expect))

    case(("missing_answer", "answers.input_text"), a_input_text=[], a_answer_start=[], a_answer_end=[])
    case(("turn_mismatch", "answers.input_text"), questions=good["questions"][:2])
    case(("turn_mismatch", "answers.answer_end"), a_answer_end=[1, 2])
    case(("missing_field", "story"), story=None)
    case(("missing_field", "answers"), answers=None)
    case(("wrong_type", "questions[1]"), questions=[good["questions"][0], None, good["questions"][2]])
    case(("empty_turn", "answers.input_text[0]"), a_input_text=["", "1871", "unknown"])
    case(("bad_value", "story"), story="  ")
    case(("empty_conversation", "questions"), questions=[], a_input_text=[], a_answer_start=[], a_answer_end=[])
    return cases


@pytest.mark.parametrize("index", range(len(_malformed_rows())))
def test_malformed_parquet_row_raises_naming_row_and_field(tmp_path, index):
    good = hub_row(stories(VALID / "coqa-train-v1.0.json")[0])
    row, (reason, field) = _malformed_rows()[index]
    path = write_parquet(tmp_path / "train-00000-of-00001.parquet", [good, row])
    with pytest.raises(RecordError) as e:
        load("coqa", tmp_path)
    assert (e.value.reason, e.value.field, e.value.line) == (reason, field, 1)
    assert e.value.file == str(path) and "row 1: " in str(e.value)


def test_malformed_parquet_in_skip_mode(tmp_path):
    good = hub_row(stories(VALID / "coqa-train-v1.0.json")[0])
    cases = _malformed_rows()
    write_parquet(tmp_path / "train-00000-of-00001.parquet", [good] + [r for r, _ in cases] + [good])
    convs, ctx = load("coqa", tmp_path, on_error="skip")
    assert [c.meta["source"]["row"] for c in convs] == [0, len(cases) + 1]
    assert sum(ctx.skipped.values()) == len(cases)


def test_a_parquet_file_with_another_schema_or_broken_fails(tmp_path):
    schema = pa.schema([("story", pa.string()), ("questions", pa.list_(pa.string()))])
    write_parquet(tmp_path / "train-00000-of-00001.parquet", [{"story": "s", "questions": ["q"]}], schema=schema)
    with pytest.raises(RecordError) as e:
        load("coqa", tmp_path, on_error="skip")
    assert e.value.reason == "missing_field" and e.value.field == "source"

    (tmp_path / "train-00000-of-00001.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(RecordError) as e:
        load("coqa", tmp_path, on_error="skip")
    assert e.value.reason == "bad_file"


def test_prepare_from_parquet_writes_plain_json(hub_dir, tmp_path):
    out = tmp_path / "out" / "coqa.jsonl"
    metrics = prepare(
        "coqa",
        hub_dir,
        out,
        tmp_path / "out" / "metrics.json",
        per_dataset=3,
        seed=7,
        options={"items": "prefixes", "max_turns": 2},
    )
    assert metrics["conversations"] == 13 and metrics["sampled"] == 3
    assert metrics["options"] == {"items": "prefixes", "max_turns": 2, "splits": None}
    assert metrics["policy"] == {"truncated_history": 2 + 1 + 3 + 0, "unknown_answer": 2}  # prefixes past turn 2
    assert len(list(read_jsonl(out, Conversation))) == 3


# --------------------------------------------------------------------------- the real excerpt


def test_real_dev_story(shared_samples, tmp_path):
    path = shared_samples / "coqa" / "coqa-dev-v1.0.json"
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    shutil.copy(path, raw_dir / path.name)

    convs, ctx = load("coqa", raw_dir)
    assert len(convs) == 1
    c = convs[0]
    assert c.id == "coqa/3dr23u6we5exclen4th8uq9rb42tel"
    assert len(c.turns) == 24
    assert c.turns[0].text == "What color was Cotton?" and c.turns[0].role == "user"
    assert c.turns[1].text == "white" and c.turns[1].role == "assistant"
    assert c.turns[-2].text == "Did they want Cotton to change the color of her fur?"
    assert c.response.text == "no"
    assert c.context.startswith("Once upon a time, in a barn near a farm house, there lived a little white kitten")
    assert c.meta["domain"] == "mctest" and c.meta["split"] == "dev"
    assert c.meta["filename"] == "mc160.test.41"
    assert c.meta["n_turns"] == 12 and c.meta["n_additional_answers"] == 3
    assert ctx.source_records == 1 and not ctx.skipped and not ctx.policy

    prefixes, _ = load("coqa", raw_dir, {"items": "prefixes"})
    assert [len(p.turns) for p in prefixes] == list(range(2, 25, 2))
    assert pairs(prefixes[0]) == [("user", "What color was Cotton?"), ("assistant", "white")]
    assert prefixes[-1].turns == c.turns

    # the same story through the Hub's parquet schema gives the same turns and context
    write_parquet(tmp_path / "hub" / "validation-00000-of-00001.parquet", [hub_row(stories(path)[0])])
    (hub,), _ = load("coqa", tmp_path / "hub")
    assert hub.turns == c.turns and hub.context == c.context
    assert hub.meta["story_sha256"] == c.meta["story_sha256"]
