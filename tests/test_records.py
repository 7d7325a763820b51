"""Records: validation names the field, JSONL round-trips, writes are atomic."""

from __future__ import annotations

import json
import os

import pytest

from explainft.errors import RecordError
from explainft.records import Conversation, Item, Prediction, Rating, Turn, read_jsonl, write_jsonl


def conv(**kw):
    base = dict(id="d/1", dataset="d", turns=(Turn("user", "Hi there"), Turn("assistant", "Hello!")))
    base.update(kw)
    return Conversation(**base)


def test_conversation_round_trip_keeps_every_field(tmp_path):
    c = conv(
        context="A story.",
        meta={"b": 1, "a": [1, 2], "source": {"file": "x.jsonl", "line": 3}},
        turns=(Turn("user", "Q?", speaker="BIANCA"), Turn("assistant", "A – é ✓", speaker="CAMERON")),
    )
    p = tmp_path / "c.jsonl"
    assert write_jsonl(p, [c, c.__class__(**{**c.__dict__, "id": "d/2"})]) == 2
    back = list(read_jsonl(p, Conversation))
    assert back[0] == c
    assert back[0].response.text == "A – é ✓" and back[0].turns[0].speaker == "BIANCA"
    assert [b.id for b in back] == ["d/1", "d/2"]
    # UTF-8 on disk, not \u escapes; keys sorted so output is byte-stable
    raw = p.read_text(encoding="utf-8").splitlines()[0]
    assert "é ✓" in raw
    assert list(json.loads(raw)) == sorted(json.loads(raw))


@pytest.mark.parametrize(
    "kwargs, reason, field",
    [
        ({"turns": ()}, "empty_conversation", "turns"),
        ({"turns": (Turn("user", "Hi"),)}, "last_turn_not_response", "turns[0].role"),
        ({"turns": (Turn("user", "Hi"), Turn("bot", "Yo"))}, "bad_role", "turns[1].role"),
        ({"turns": (Turn("user", "Hi"), Turn("assistant", "   "))}, "empty_response", "turns[1].text"),
        ({"turns": (Turn("user", ""), Turn("assistant", "Yo"))}, "empty_turn", "turns[0].text"),
        ({"turns": (Turn("assistant", "Yo"),)}, "no_request", "turns"),
        ({"id": ""}, "missing_field", "id"),
    ],
)
def test_invalid_conversations_name_reason_and_field(kwargs, reason, field):
    with pytest.raises(RecordError) as ei:
        conv(**kwargs)
    assert ei.value.reason == reason
    assert ei.value.field == field


@pytest.mark.parametrize(
    "line, reason, field",
    [
        (
            '{"id": "x", "dataset": "d", "turns": [{"role": "user", "text": "a"}, {"role": "assistant", "text": 5}]}',
            "wrong_type",
            "turns[1].text",
        ),
        ('{"id": "x", "turns": []}', "missing_field", "dataset"),
        ('{"id": "x", "dataset": "d", "turns": "nope"}', "wrong_type", "turns"),
        (
            '{"id": "x", "dataset": "d", "turns": [{"role": "user", "text": "a"}]}',
            "last_turn_not_response",
            "turns[0].role",
        ),
        ('{"id": true, "dataset": "d", "turns": []}', "wrong_type", "id"),
        ("[1, 2]", "wrong_type", None),
        ('{"id": "x", "dataset": ', "bad_json", None),
    ],
)
def test_read_jsonl_errors_name_file_line_and_field(tmp_path, line, reason, field):
    p = tmp_path / "bad.jsonl"
    good = conv().to_dict()
    p.write_text(json.dumps(good) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as ei:
        list(read_jsonl(p, Conversation))
    e = ei.value
    assert (e.reason, e.field, e.line, e.file) == (reason, field, 3, str(p))
    assert f"{p}:3" in str(e)


def test_read_jsonl_rejects_invalid_utf8_with_line(tmp_path):
    p = tmp_path / "enc.jsonl"
    p.write_bytes(json.dumps(conv().to_dict()).encode() + b"\n" + b'{"id": "\xff"}\n')
    with pytest.raises(RecordError) as ei:
        list(read_jsonl(p, Conversation))
    assert (ei.value.reason, ei.value.line) == ("bad_encoding", 2)


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path):
    p = tmp_path / "out.jsonl"
    write_jsonl(p, [conv()])
    before = p.read_bytes()

    def boom():
        yield conv(id="d/9")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(p, boom())
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.jsonl"]  # no temp file left behind


def test_rating_item_prediction_validate_and_round_trip(tmp_path):
    r = Rating(
        id="d/1",
        dimension="naturalness",
        teacher="t1",
        prompt="scale5",
        scale=5,
        raw_score=4,
        assessment="fluent",
        confidence="sure",
        status="ok",
    )
    assert Rating.from_dict(r.to_dict()) == r
    bad = Rating(
        id="d/1",
        dimension="on_topic",
        teacher="t1",
        prompt="p",
        scale=4,
        raw_score=None,
        assessment="",
        confidence="",
        status="unparsable",
        error="no JSON",
    )
    assert Rating.from_dict(bad.to_dict()) == bad
    with pytest.raises(RecordError, match="score in 1..4"):
        Rating(
            id="d/1",
            dimension="on_topic",
            teacher="t",
            prompt="p",
            scale=4,
            raw_score=5,
            assessment="",
            confidence="",
            status="ok",
        )
    with pytest.raises(RecordError, match="null score"):
        Rating(
            id="d/1",
            dimension="on_topic",
            teacher="t",
            prompt="p",
            scale=4,
            raw_score=2,
            assessment="",
            confidence="",
            status="failed",
        )
    it = Item(id="d/1", dimension="comprehensiveness", score=0.75, label=4, assessment="a", confidence="c", n_valid=12)
    assert Item.from_dict(it.to_dict()) == it
    with pytest.raises(RecordError) as ei:
        Item(id="d/1", dimension="comprehensiveness", score=1.5, label=4, assessment="", confidence="", n_valid=1)
    assert ei.value.field == "score"
    pr = Prediction(
        id="d/1",
        model="m",
        test_set="t",
        dimension="on_topic",
        probs=(0.1, 0.2, 0.3, 0.2, 0.2),
        expected=0.55,
        argmax=3,
        target=0.75,
    )
    d = pr.to_dict()
    assert [d[f"p{k}"] for k in range(1, 6)] == [0.1, 0.2, 0.3, 0.2, 0.2]
    assert Prediction.from_dict(d) == pr
    write_jsonl(tmp_path / "p.jsonl", [pr])
    assert list(read_jsonl(tmp_path / "p.jsonl", Prediction)) == [pr]
