"""Chatbot Arena loader: real excerpt (JSONL and as Hub parquet), fixture edge cases, options, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, load

from explainft.datasets import arena
from explainft.datasets.prepare import prepare
from explainft.errors import ConfigError, RecordError
from explainft.records import Conversation

ARENA = FIXTURES / "arena"
VALID = ARENA / "valid"
MALFORMED = ARENA / "malformed"
HUB_PARQUET = "data/train-00000-of-00001-cced8514c7ed782a.parquet"

CATEGORIES = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
]
_MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])
# the schema of the Hub parquet (the dataset card), in the Hub's column order
HUB_SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),
        ("model_a", pa.string()),
        ("model_b", pa.string()),
        ("winner", pa.string()),
        ("judge", pa.string()),
        ("conversation_a", pa.list_(_MESSAGE)),
        ("conversation_b", pa.list_(_MESSAGE)),
        ("turn", pa.int64()),
        ("anony", pa.bool_()),
        ("language", pa.string()),
        ("tstamp", pa.float64()),
        (
            "openai_moderation",
            pa.struct(
                [
                    ("categories", pa.struct([(k, pa.bool_()) for k in CATEGORIES])),
                    ("category_scores", pa.struct([(k, pa.float64()) for k in CATEGORIES])),
                    ("flagged", pa.bool_()),
                ]
            ),
        ),
        (
            "toxic_chat_tag",
            pa.struct(
                [
                    ("roberta-large", pa.struct([("flagged", pa.bool_()), ("probability", pa.float64())])),
                    ("t5-large", pa.struct([("flagged", pa.bool_()), ("score", pa.float64())])),
                ]
            ),
        ),
    ]
)


def _rows(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def _write_parquet(rows: list[dict], path: Path, schema=HUB_SCHEMA, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=row_group_size)
    return path


def _qid(n: int) -> str:
    return f"{n:032x}"


def _by_id(convs):
    return {c.id: c for c in convs}


def _without_source(c: Conversation) -> dict:
    d = c.to_dict()
    d["meta"] = {k: v for k, v in d["meta"].items() if k != "source"}
    return d


# --------------------------------------------------------------------------- the real excerpt


def test_real_sample_jsonl(shared_samples):
    convs, ctx = load("chatbot_arena", shared_samples / "chatbot_arena")
    assert [c.id for c in convs] == [
        "chatbot_arena/58210e39b3fd4441a2bd4a518bb44c2d/a",
        "chatbot_arena/58210e39b3fd4441a2bd4a518bb44c2d/b",
        "chatbot_arena/2564acd09e3942fd97657d05282d4389/a",
        "chatbot_arena/2564acd09e3942fd97657d05282d4389/b",
        "chatbot_arena/90bfd142157948aba01931726c888e7f/a",
        "chatbot_arena/90bfd142157948aba01931726c888e7f/b",
    ]
    a, b = convs[0], convs[1]
    assert a.dataset == "chatbot_arena"
    assert [t.role for t in a.turns] == ["user", "assistant"] and len(b.turns) == 2
    assert a.turns[0].text == b.turns[0].text == "What is the difference between OpenCL and CUDA?"
    assert a.response.text.startswith("OpenCL and CUDA are two different programming models")
    assert b.response.text.startswith("OpenCL and CUDA are both programming languages for parallel computing")
    assert a.meta == {
        "question_id": "58210e39b3fd4441a2bd4a518bb44c2d",
        "side": "a",
        "model": "chatglm-6b",
        "opponent": "koala-13b",
        "winner": "model_b",
        "won": False,
        "judge": "arena_user_973",
        "language": "English",
        "turn": 1,
        "anony": True,
        "tstamp": 1682351591.1322,
        "flagged": False,
        "moderation": {
            "openai_moderation.flagged": False,
            "toxic_chat_tag.roberta-large.flagged": False,
            "toxic_chat_tag.t5-large.flagged": False,
        },
        "source": {"file": "train.sample.jsonl", "line": 1},
    }
    assert (b.meta["model"], b.meta["opponent"], b.meta["won"]) == ("koala-13b", "chatglm-6b", True)
    # row 2 is a tie: no side won
    assert convs[2].meta["winner"] == "tie" and convs[2].meta["won"] is None and convs[3].meta["won"] is None
    assert convs[2].turns[0].text == "Why did my parent not invite me to their wedding?"
    assert (convs[2].meta["model"], convs[3].meta["model"]) == ("oasst-pythia-12b", "alpaca-13b")
    assert convs[4].turns[0].text == "Fuji vs. Nikon, which is better?"
    assert (convs[4].meta["won"], convs[5].meta["won"]) == (False, True)
    assert convs[5].meta["source"] == {"file": "train.sample.jsonl", "line": 3}
    s = ctx.summary()
    assert s["source_records"] == 3 and s["skipped_total"] == 0 and s["dropped_total"] == 0 and s["policy"] == {}


def test_real_sample_as_hub_parquet(shared_samples, tmp_path):
    rows = _rows(shared_samples / "chatbot_arena" / "train.sample.jsonl")
    _write_parquet(rows, tmp_path / HUB_PARQUET)
    from_parquet, ctx = load("chatbot_arena", tmp_path)
    from_jsonl, _ = load("chatbot_arena", shared_samples / "chatbot_arena")
    assert [_without_source(c) for c in from_parquet] == [_without_source(c) for c in from_jsonl]
    assert [c.meta["source"] for c in from_parquet[::2]] == [{"file": HUB_PARQUET, "row": r} for r in range(3)]
    assert ctx.files == [HUB_PARQUET]


# --------------------------------------------------------------------------- fixture edge cases


def test_fixture_defaults():
    convs, ctx = load("chatbot_arena", VALID)
    byid = _by_id(convs)
    assert len(convs) == 20  # 12 rows x 2 sides - 4 empty sides
    for n, side in [(7, "b"), (8, "a"), (10, "b"), (11, "a")]:
        assert f"chatbot_arena/{_qid(n)}/{side}" not in byid
    for n, side in [(7, "a"), (8, "b"), (10, "a"), (11, "b")]:
        assert f"chatbot_arena/{_qid(n)}/{side}" in byid
    s = ctx.summary()
    assert s["source_records"] == 12
    assert s["dropped"] == {"empty_conversation": 2, "empty_content": 1, "null_content": 1}
    assert s["policy"] == {"merged_consecutive_turns": 2}
    assert s["skipped_total"] == 0

    # multi-turn, tie (bothbad), anony false
    c = byid[f"chatbot_arena/{_qid(2)}/a"]
    assert [t.role for t in c.turns] == ["user", "assistant", "user", "assistant"]
    assert c.response.text == "I would tell you a UDP joke, but you might not get it."
    assert (c.meta["winner"], c.meta["won"], c.meta["turn"], c.meta["anony"]) == ("tie (bothbad)", None, 2, False)
    # model_a won
    assert byid[f"chatbot_arena/{_qid(1)}/a"].meta["won"] is True
    assert byid[f"chatbot_arena/{_qid(1)}/b"].meta["won"] is False
    # non-English kept by default, text exact
    c = byid[f"chatbot_arena/{_qid(3)}/a"]
    assert c.meta["language"] == "Chinese" and c.response.text == "你好！我是一个人工智能助手。😊"
    # moderation flags
    assert byid[f"chatbot_arena/{_qid(4)}/a"].meta["moderation"]["openai_moderation.flagged"] is True
    assert byid[f"chatbot_arena/{_qid(5)}/b"].meta["moderation"] == {
        "openai_moderation.flagged": False,
        "toxic_chat_tag.roberta-large.flagged": True,
        "toxic_chat_tag.t5-large.flagged": False,
    }
    assert byid[f"chatbot_arena/{_qid(6)}/a"].meta["moderation"]["toxic_chat_tag.t5-large.flagged"] is True
    assert [byid[f"chatbot_arena/{_qid(n)}/a"].meta["flagged"] for n in (1, 4, 5, 6)] == [False, True, True, True]
    # consecutive user messages merged
    c = byid[f"chatbot_arena/{_qid(9)}/b"]
    assert [(t.role, t.text) for t in c.turns] == [
        ("user", "Hi\n\nCan you list three primes?"),
        ("assistant", "Sure: 2, 3, 5."),
    ]
    # content is kept exactly, role words included
    c = byid[f"chatbot_arena/{_qid(12)}/b"]
    assert c.turns[0].text == "Format this as a chat:\nuser: hi\nassistant: hello"
    assert c.response.text == "**User:** hi\n\n**Assistant:** hello"


@pytest.mark.parametrize("sides, expected", [("a", {"a"}), ("b", {"b"}), ("both", {"a", "b"})])
def test_sides(sides, expected):
    convs, ctx = load("chatbot_arena", VALID, {"sides": sides})
    assert {c.meta["side"] for c in convs} == expected
    assert all(c.id.endswith("/" + c.meta["side"]) for c in convs)
    # only the chosen side's empty conversations are counted
    per_side = {"a": {"null_content": 1, "empty_conversation": 1}, "b": {"empty_conversation": 1, "empty_content": 1}}
    want: dict = {}
    for s in expected:
        for k, v in per_side[s].items():
            want[k] = want.get(k, 0) + v
    assert dict(ctx.dropped) == want


def test_language_filter():
    convs, ctx = load("chatbot_arena", VALID, {"language": "English"})
    assert all(c.meta["language"] == "English" for c in convs)
    assert not any(c.meta["question_id"] == _qid(3) for c in convs)
    assert len(convs) == 18 and ctx.dropped["language"] == 1
    convs, ctx = load("chatbot_arena", VALID, {"language": "Chinese"})
    assert {c.meta["question_id"] for c in convs} == {_qid(3)} and ctx.dropped["language"] == 11


def test_drop_flagged():
    convs, ctx = load("chatbot_arena", VALID, {"drop_flagged": True})
    assert not {c.meta["question_id"] for c in convs} & {_qid(4), _qid(5), _qid(6)}
    assert not any(c.meta["flagged"] for c in convs)
    assert len(convs) == 14 and ctx.dropped["flagged"] == 3


def test_multi_turn_drop():
    convs, ctx = load("chatbot_arena", VALID, {"multi_turn": "drop"})
    assert all(c.meta["turn"] == 1 for c in convs)
    assert len(convs) == 16 and ctx.dropped["multi_turn"] == 2
    assert "merged_consecutive_turns" not in ctx.policy  # row 9 was dropped before it was built


def test_filters_count_each_row_once():
    _, ctx = load("chatbot_arena", VALID, {"language": "English", "drop_flagged": True, "multi_turn": "drop"})
    assert (ctx.dropped["language"], ctx.dropped["flagged"], ctx.dropped["multi_turn"]) == (1, 3, 2)
    assert ctx.source_records == 12


def test_consecutive_roles_keep():
    convs, ctx = load("chatbot_arena", VALID, {"consecutive_roles": "keep"})
    c = _by_id(convs)[f"chatbot_arena/{_qid(9)}/a"]
    assert [(t.role, t.text) for t in c.turns] == [
        ("user", "Hi"),
        ("user", "Can you list three primes?"),
        ("assistant", "2, 3 and 5."),
    ]
    assert ctx.policy == {"kept_consecutive_turns": 2}


@pytest.mark.parametrize(
    "options, key",
    [
        ({"sides": "c"}, "sides"),
        ({"language": 5}, "language"),
        ({"drop_flagged": "yes"}, "drop_flagged"),
        ({"multi_turn": "only"}, "multi_turn"),
        ({"consecutive_roles": "join"}, "consecutive_roles"),
        ({"winner": "drop_ties"}, "winner"),
    ],
)
def test_bad_options(options, key):
    with pytest.raises(ConfigError) as e:
        load("chatbot_arena", VALID, options)
    assert e.value.key == f"sources.chatbot_arena.options.{key}"


def test_prepare_writes_valid_records(tmp_path):
    out, metrics_path = tmp_path / "out.jsonl", tmp_path / "metrics.json"
    m = prepare("chatbot_arena", VALID, out, metrics_path, per_dataset=5, seed=7, options={"language": "English"})
    assert (m["conversations"], m["sampled"]) == (18, 5)
    assert m["dropped"] == {"empty_content": 1, "empty_conversation": 2, "language": 1, "null_content": 1}
    assert m["options"] == {
        "consecutive_roles": "merge",
        "drop_flagged": False,
        "language": "English",
        "multi_turn": "keep",
        "sides": "both",
    }
    back = [Conversation.from_dict(json.loads(l)) for l in out.read_text(encoding="utf-8").splitlines()]
    assert len(back) == 5 and all(c.meta["won"] in (True, False, None) for c in back)


# --------------------------------------------------------------------------- parquet


def test_parquet_matches_jsonl_across_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(arena, "BATCH_ROWS", 5)
    _write_parquet(_rows(VALID / "train.jsonl"), tmp_path / HUB_PARQUET, row_group_size=4)
    assert pq.ParquetFile(tmp_path / HUB_PARQUET).metadata.num_row_groups == 3
    from_parquet, ctx = load("chatbot_arena", tmp_path)
    from_jsonl, ctx_jsonl = load("chatbot_arena", VALID)
    assert [_without_source(c) for c in from_parquet] == [_without_source(c) for c in from_jsonl]
    assert ctx.summary() == ctx_jsonl.summary()
    rows = [c.meta["source"]["row"] for c in from_parquet]
    assert rows == sorted(rows) and set(rows) == set(range(12))
    # row index = provenance: question n is on row n - 1
    assert all(c.meta["source"]["row"] == int(c.meta["question_id"], 16) - 1 for c in from_parquet)


def test_parquet_and_jsonl_side_by_side(tmp_path, shared_samples):
    _write_parquet(_rows(VALID / "train.jsonl"), tmp_path / HUB_PARQUET)
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "more.jsonl").write_bytes(
        (shared_samples / "chatbot_arena" / "train.sample.jsonl").read_bytes()
    )
    convs, ctx = load("chatbot_arena", tmp_path)
    assert len(convs) == 26
    assert sorted(ctx.files) == [HUB_PARQUET, "extra/more.jsonl"]


def test_parquet_missing_column(tmp_path):
    rows = _rows(VALID / "train.jsonl")
    schema = pa.schema([f for f in HUB_SCHEMA if f.name != "judge"])
    _write_parquet([{k: v for k, v in r.items() if k != "judge"} for r in rows], tmp_path / HUB_PARQUET, schema)
    with pytest.raises(RecordError) as e:
        load("chatbot_arena", tmp_path)
    err = e.value
    assert (err.reason, err.field, err.line) == ("missing_field", "judge", 0)
    assert "row 0" in str(err) and err.file.endswith(HUB_PARQUET)
    _, ctx = load("chatbot_arena", tmp_path, on_error="skip")
    assert ctx.skipped == {"missing_field": 12}


def test_parquet_wrongly_typed_column(tmp_path):
    rows = _rows(VALID / "train.jsonl")
    for r in rows:
        r["turn"] = str(r["turn"])
    schema = pa.schema([pa.field("turn", pa.string()) if f.name == "turn" else f for f in HUB_SCHEMA])
    _write_parquet(rows, tmp_path / HUB_PARQUET, schema)
    with pytest.raises(RecordError) as e:
        load("chatbot_arena", tmp_path)
    assert (e.value.reason, e.value.field, e.value.line) == ("wrong_type", "turn", 0)


def test_parquet_bad_winner_names_the_row(tmp_path):
    rows = _rows(VALID / "train.jsonl")
    rows[3]["winner"] = "model_c"
    _write_parquet(rows, tmp_path / HUB_PARQUET, row_group_size=2)
    with pytest.raises(RecordError) as e:
        load("chatbot_arena", tmp_path)
    err = e.value
    assert (err.reason, err.field, err.line) == ("bad_value", "winner", 3)
    assert "row 3" in str(err) and err.record == f"chatbot_arena/{_qid(4)}"
    convs, ctx = load("chatbot_arena", tmp_path, on_error="skip")
    assert ctx.skipped == {"bad_value": 1} and len(convs) == 18


def test_parquet_corrupt_file(tmp_path):
    p = tmp_path / HUB_PARQUET
    p.parent.mkdir(parents=True)
    p.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(RecordError) as e:
        load("chatbot_arena", tmp_path, on_error="skip")
    assert e.value.reason == "bad_file"


# --------------------------------------------------------------------------- malformed JSON lines


MALFORMED_LINES = {
    2: ("bad_json", None),
    3: ("missing_field", "judge"),
    4: ("wrong_type", "turn"),
    5: ("bad_value", "winner"),
    6: ("bad_encoding", None),
    7: ("missing_field", "openai_moderation.flagged"),
    8: ("wrong_type", "toxic_chat_tag.t5-large.flagged"),
    9: ("wrong_type", "conversation_a"),
    10: ("bad_role", "conversation_a[0].role"),
    11: ("wrong_type", "conversation_b[1].content"),
    12: ("last_turn_not_response", "conversation_a[2].role"),
    13: ("wrong_type", None),
    14: ("wrong_type", "anony"),
    15: ("wrong_type", "turn"),
    16: ("missing_field", "question_id"),
}


def _only_line(src: Path, lineno: int, dst_dir: Path) -> Path:
    """A copy of ``src`` with every line but ``lineno`` blanked (line numbers stay)."""
    lines = src.read_bytes().split(b"\n")
    (dst_dir / "train.jsonl").write_bytes(b"\n".join(l if i == lineno else b"" for i, l in enumerate(lines, 1)))
    return dst_dir


@pytest.mark.parametrize("lineno", sorted(MALFORMED_LINES))
def test_malformed_line_raises(lineno, tmp_path):
    reason, field = MALFORMED_LINES[lineno]
    with pytest.raises(RecordError) as e:
        load("chatbot_arena", _only_line(MALFORMED / "train.jsonl", lineno, tmp_path))
    err = e.value
    assert (err.reason, err.field, err.line) == (reason, field, lineno)
    assert f"train.jsonl:{lineno}" in str(err)


def test_malformed_skip_counts():
    convs, ctx = load("chatbot_arena", MALFORMED, on_error="skip")
    assert [c.id for c in convs] == [
        f"chatbot_arena/{_qid(21)}/a",
        f"chatbot_arena/{_qid(21)}/b",
        f"chatbot_arena/{_qid(22)}/a",
        f"chatbot_arena/{_qid(22)}/b",
    ]
    s = ctx.summary()
    assert s["source_records"] == 17
    assert s["skipped"] == {
        "bad_encoding": 1,
        "bad_json": 1,
        "bad_role": 1,
        "bad_value": 1,
        "last_turn_not_response": 1,
        "missing_field": 3,
        "wrong_type": 7,
    }
    assert s["dropped_total"] == 0 and s["policy"] == {}


def test_error_in_one_side_leaves_no_counts_from_the_other(tmp_path):
    row = _rows(VALID / "train.jsonl")[8]  # row 9: consecutive user messages on both sides
    row["conversation_b"][-1]["role"] = "system"
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    convs, ctx = load("chatbot_arena", tmp_path, on_error="skip")
    assert convs == [] and ctx.skipped == {"bad_role": 1} and ctx.policy == {}


def test_no_files_is_an_error(tmp_path):
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.jsonl").write_text("{}\n")
    with pytest.raises(RecordError) as e:
        load("chatbot_arena", tmp_path)
    assert e.value.reason == "missing_file"
