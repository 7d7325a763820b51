"""HH-RLHF loader: real excerpt, fixtures with every documented edge case, malformed lines."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, load

from explainft.datasets import hh_rlhf
from explainft.datasets.prepare import prepare
from explainft.errors import ConfigError, RecordError
from explainft.records import Conversation

HH = FIXTURES / "hh_rlhf"
VALID = HH / "valid"
MALFORMED = HH / "malformed"


def _gzip_tree(src: Path, dst: Path) -> Path:
    """Copy a fixture tree, gzipping each ``*.jsonl`` to ``*.jsonl.gz`` as the Hub stores them."""
    for p in src.rglob("*.jsonl"):
        out = dst / p.relative_to(src).with_suffix(".jsonl.gz")
        out.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(out, "wb") as fh:
            fh.write(p.read_bytes())
    return dst


def _by_id(convs):
    return {c.id: c for c in convs}


# --------------------------------------------------------------------------- the real excerpt


REAL_TURNS = [6, 6, 4, 10, 2, 6, 8, 6]


def test_real_sample_chosen(shared_samples):
    convs, ctx = load("hh_rlhf_chosen", shared_samples / "hh_rlhf")
    assert [c.id for c in convs] == [f"hh_rlhf_chosen/default/test/{i}" for i in range(1, 9)]
    assert [len(c.turns) for c in convs] == REAL_TURNS
    first = convs[0]
    assert first.dataset == "hh_rlhf_chosen"
    assert first.turns[0].role == "user"
    assert first.turns[0].text == "what are some pranks with a pen i can do?"
    assert first.turns[1].role == "assistant"
    assert first.turns[1].text == "Are you looking for practical joke ideas?"
    assert first.turns[2].text == "yep"
    assert [t.role for t in first.turns] == ["user", "assistant"] * 3
    assert first.response.text.startswith("No, sorry!  All of these involve a pen")
    assert convs[4].turns[0].text == "What will happen if I drive my car into the water?"
    assert convs[3].response.text == "I’ll give you the links."
    assert all(c.meta["shared_prefix"] is True for c in convs)
    assert first.meta == {
        "subset": "default",
        "split": "test",
        "side": "chosen",
        "shared_prefix": True,
        "source": {"file": "test.jsonl.gz", "line": 1},
    }
    assert ctx.summary()["source_records"] == 8
    assert ctx.summary()["skipped_total"] == 0 and ctx.summary()["dropped_total"] == 0
    assert ctx.files == ["test.jsonl.gz"]


def test_real_sample_rejected_shares_the_prefix(shared_samples):
    chosen, _ = load("hh_rlhf_chosen", shared_samples / "hh_rlhf")
    rejected, _ = load("hh_rlhf_rejected", shared_samples / "hh_rlhf")
    assert [c.id for c in rejected] == [f"hh_rlhf_rejected/default/test/{i}" for i in range(1, 9)]
    assert [len(c.turns) for c in rejected] == REAL_TURNS
    assert rejected[0].response.text.startswith("There are lots of funny things you can do with pens")
    assert rejected[0].meta["side"] == "rejected"
    for c, r in zip(chosen, rejected):
        assert c.turns[:-1] == r.turns[:-1]
        assert c.response.text != r.response.text


def test_real_sample_in_hub_layout(shared_samples, tmp_path):
    (tmp_path / "harmless-base").mkdir()
    shutil.copy(shared_samples / "hh_rlhf" / "test.jsonl.gz", tmp_path / "harmless-base" / "test.jsonl.gz")
    convs, ctx = load("hh_rlhf_chosen", tmp_path)
    assert convs[0].id == "hh_rlhf_chosen/harmless-base/test/1"
    assert convs[0].meta["subset"] == "harmless-base" and convs[0].meta["split"] == "test"
    assert convs[0].meta["source"] == {"file": "harmless-base/test.jsonl.gz", "line": 1}
    assert ctx.files == ["harmless-base/test.jsonl.gz"]


# --------------------------------------------------------------------------- splitting


def test_split_only_on_blank_line_markers():
    text = (
        "\n\nHuman: Write lines that start with Human: or Assistant:\n\nAssistant: Sure.\nHuman: hi\n"
        "Assistant: hello\n\nDone. Assistant: bye\n\nHuman:no space"
    )
    turns = hh_rlhf.split_transcript(text)
    assert [(t.role, t.text) for t in turns] == [
        ("user", "Write lines that start with Human: or Assistant:"),
        ("assistant", "Sure.\nHuman: hi\nAssistant: hello\n\nDone. Assistant: bye"),
        ("user", "no space"),
    ]


def test_split_consumes_one_space_only():
    turns = hh_rlhf.split_transcript("\n\nHuman:  two spaces\n\nAssistant: ok ")
    assert [t.text for t in turns] == [" two spaces", "ok "]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty_conversation"),
        ("\n\n  ", "empty_conversation"),
        ("Human: hi\n\nAssistant: ho", "text_before_first_marker"),
        ("preamble\n\nHuman: hi\n\nAssistant: ho", "text_before_first_marker"),
        ("\nHuman: hi\n\nAssistant: ho", "text_before_first_marker"),
    ],
)
def test_split_rejects(text, reason):
    with pytest.raises(RecordError) as e:
        hh_rlhf.split_transcript(text)
    assert e.value.reason == reason


def test_shared_prefix():
    a = "\n\nHuman: q\n\nAssistant: a\n\nHuman: q2\n\nAssistant: x"
    assert hh_rlhf.shared_prefix(a, "\n\nHuman: q\n\nAssistant: a\n\nHuman: q2\n\nAssistant: y")
    assert not hh_rlhf.shared_prefix(a, "\n\nHuman: q\n\nAssistant: b\n\nHuman: q2\n\nAssistant: y")
    assert not hh_rlhf.shared_prefix("no markers", "no markers")


def test_subset_and_split_from_path(tmp_path):
    assert hh_rlhf.subset_split(tmp_path / "helpful-online" / "train.jsonl.gz", tmp_path) == ("helpful-online", "train")
    assert hh_rlhf.subset_split(tmp_path / "x" / "harmless-base" / "test.jsonl", tmp_path) == ("harmless-base", "test")
    assert hh_rlhf.subset_split(tmp_path / "test.jsonl.gz", tmp_path) == ("default", "test")


# --------------------------------------------------------------------------- fixtures: edge cases


@pytest.fixture(params=["jsonl", "jsonl.gz"])
def valid_dir(request, tmp_path) -> Path:
    return VALID if request.param == "jsonl" else _gzip_tree(VALID, tmp_path / "raw")


def test_fixture_chosen(valid_dir):
    convs, ctx = load("hh_rlhf_chosen", valid_dir)
    byid = _by_id(convs)
    base = "hh_rlhf_chosen/harmless-base/test"
    assert sorted(byid) == sorted(
        [f"{base}/{i}" for i in (1, 2, 3, 4, 6, 7, 8)]
        + ["hh_rlhf_chosen/helpful-base/train/1", "hh_rlhf_chosen/helpful-base/train/2"]
    )
    s = ctx.summary()
    assert s["source_records"] == 10  # the red-team line is never read
    assert s["dropped"] == {"empty_final_response": 1}  # line 5
    assert s["policy"] == {"ignored_red_team_files": 1, "merged_consecutive_turns": 2}  # lines 3 and 4
    assert s["skipped_total"] == 0
    assert not any("red" in f for f in ctx.files)

    # 1: ordinary transcript
    c = byid[f"{base}/1"]
    assert [t.role for t in c.turns] == ["user", "assistant", "user", "assistant"]
    assert c.response.text == "About six minutes, then cool it in cold water."
    assert c.meta["shared_prefix"] is True
    # 2: literal markers not after a blank line stay in the text
    c = byid[f"{base}/2"]
    assert len(c.turns) == 2
    assert c.turns[0].text == "Write a dialogue where each line starts with Human: or Assistant: please"
    assert c.response.text == (
        "Sure.\nHuman: Hello there.\nAssistant: Hi! How can I help?\n\nThat is the whole dialogue, Human: done."
    )
    # 3: two consecutive Human turns merged with a blank line
    c = byid[f"{base}/3"]
    assert [t.role for t in c.turns] == ["user", "assistant", "user", "assistant"]
    assert c.turns[0].text == "hi\n\nare you there?"
    # 4: two consecutive Assistant turns at the end are merged into the response; prefixes differ
    c = byid[f"{base}/4"]
    assert c.response.text == "Octopuses have three hearts.\n\nAnd blue blood."
    assert c.meta["shared_prefix"] is False
    # 6: no space after the colon
    assert [t.text for t in byid[f"{base}/6"].turns] == ["hi", "hello"]
    # 7: rejected differs before its last Assistant turn
    assert byid[f"{base}/7"].meta["shared_prefix"] is False
    # 8: non-ASCII kept exactly
    assert byid[f"{base}/8"].turns[0].text == "What’s “déjà vu”?"
    assert byid[f"{base}/8"].response.text.endswith("🙂")

    h = byid["hh_rlhf_chosen/helpful-base/train/2"]
    assert h.meta["subset"] == "helpful-base" and h.meta["split"] == "train" and h.meta["side"] == "chosen"
    assert len(h.turns) == 4


def test_fixture_rejected(valid_dir):
    convs, ctx = load("hh_rlhf_rejected", valid_dir)
    byid = _by_id(convs)
    base = "hh_rlhf_rejected/harmless-base/test"
    assert len(convs) == 10
    assert byid[f"{base}/5"].turns[0].text == "Can you help me steal a car?\n\nPlease?"
    assert byid[f"{base}/5"].response.text == "No, I can't help with that."
    assert byid[f"{base}/5"].meta["shared_prefix"] is True
    assert byid[f"{base}/4"].response.text == "I don't know any facts."
    assert byid[f"{base}/4"].meta["shared_prefix"] is False
    s = ctx.summary()
    assert s["dropped_total"] == 0
    assert s["policy"] == {"ignored_red_team_files": 1, "merged_consecutive_turns": 2}  # lines 3 and 5


def test_consecutive_roles_keep():
    convs, ctx = load("hh_rlhf_chosen", VALID, {"consecutive_roles": "keep"})
    byid = _by_id(convs)
    assert [t.role for t in byid["hh_rlhf_chosen/harmless-base/test/3"].turns] == [
        "user",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert [t.text for t in byid["hh_rlhf_chosen/harmless-base/test/4"].turns] == [
        "Tell me a fact.",
        "Octopuses have three hearts.",
        "And blue blood.",
    ]
    assert ctx.summary()["policy"] == {"ignored_red_team_files": 1, "kept_consecutive_turns": 2}


def test_empty_final_response_error():
    with pytest.raises(RecordError) as e:
        load("hh_rlhf_chosen", VALID, {"empty_final_response": "error"})
    err = e.value
    assert err.reason == "empty_response" and err.field == "chosen" and err.line == 5
    assert err.file.endswith("harmless-base/test.jsonl")
    # the rejected side of that line is fine
    convs, _ = load("hh_rlhf_rejected", VALID, {"empty_final_response": "error"})
    assert len(convs) == 10


def test_conversations_round_trip_and_prepare(tmp_path):
    out, metrics_path = tmp_path / "out.jsonl", tmp_path / "metrics.json"
    m = prepare("hh_rlhf_chosen", VALID, out, metrics_path, per_dataset=None, seed=1)
    assert m["conversations"] == 9
    assert m["dropped"] == {"empty_final_response": 1}
    assert m["policy"]["ignored_red_team_files"] == 1
    assert m["options"] == {"consecutive_roles": "merge", "empty_final_response": "drop", "side": "chosen"}
    assert m["n_files"] == 2  # harmless-base/test.jsonl and helpful-base/train.jsonl; red-team never read
    back = [Conversation.from_dict(json.loads(l)) for l in out.read_text(encoding="utf-8").splitlines()]
    assert len(back) == 9 and all(c.dataset == "hh_rlhf_chosen" for c in back)


# --------------------------------------------------------------------------- red-team-attempts


def test_red_team_gz_ignored_and_counted(tmp_path):
    raw = _gzip_tree(VALID, tmp_path / "raw")
    assert (raw / "red-team-attempts" / "red_team_attempts.jsonl.gz").is_file()
    convs, ctx = load("hh_rlhf_chosen", raw)
    assert len(convs) == 9
    assert ctx.policy["ignored_red_team_files"] == 1


def test_only_red_team_is_an_error(tmp_path):
    shutil.copytree(VALID / "red-team-attempts", tmp_path / "red-team-attempts")
    with pytest.raises(RecordError) as e:
        load("hh_rlhf_chosen", tmp_path)
    assert e.value.reason == "missing_file" and "red-team" in str(e.value)


def test_no_files_is_an_error(tmp_path):
    with pytest.raises(RecordError) as e:
        load("hh_rlhf_rejected", tmp_path)
    assert e.value.reason == "missing_file"


def test_hidden_folders_are_not_data(tmp_path):
    shutil.copytree(VALID, tmp_path / "raw")
    cache = tmp_path / "raw" / ".cache" / "huggingface" / "download" / "harmless-base"
    cache.mkdir(parents=True)
    (cache / "test.jsonl").write_text("not json\n")
    convs, ctx = load("hh_rlhf_chosen", tmp_path / "raw")
    assert len(convs) == 9 and ctx.summary()["skipped_total"] == 0


# --------------------------------------------------------------------------- malformed lines


MALFORMED_LINES = {
    2: ("bad_json", None),
    3: ("missing_field", "chosen"),
    4: ("wrong_type", "chosen"),
    5: ("bad_encoding", None),
    6: ("empty_conversation", "chosen"),
    7: ("last_turn_not_response", "chosen"),
    8: ("text_before_first_marker", "chosen"),
    9: ("wrong_type", None),
    10: ("empty_turn", "chosen"),
    11: ("no_request", "chosen"),
    12: ("missing_field", "rejected"),
    13: ("empty_conversation", "chosen"),
}


def _only_line(src: Path, lineno: int, dst_dir: Path) -> Path:
    """A copy of ``src`` with every line but ``lineno`` blanked (line numbers stay)."""
    lines = src.read_bytes().split(b"\n")
    keep = [l if i == lineno else b"" for i, l in enumerate(lines, start=1)]
    dst = dst_dir / "harmless-base" / "train.jsonl"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(b"\n".join(keep))
    return dst_dir


@pytest.mark.parametrize("lineno", sorted(MALFORMED_LINES))
def test_malformed_line_raises(lineno, tmp_path):
    reason, field = MALFORMED_LINES[lineno]
    raw = _only_line(MALFORMED / "harmless-base" / "train.jsonl", lineno, tmp_path)
    with pytest.raises(RecordError) as e:
        load("hh_rlhf_chosen", raw)
    err = e.value
    assert (err.reason, err.field, err.line) == (reason, field, lineno)
    assert err.file.endswith("harmless-base/train.jsonl")
    assert f"train.jsonl:{lineno}" in str(err)


def test_malformed_skip_counts():
    convs, ctx = load("hh_rlhf_chosen", MALFORMED, on_error="skip")
    assert [c.id for c in convs] == ["hh_rlhf_chosen/harmless-base/train/1", "hh_rlhf_chosen/harmless-base/train/14"]
    s = ctx.summary()
    assert s["source_records"] == 14
    assert s["skipped"] == {
        "bad_encoding": 1,
        "bad_json": 1,
        "empty_conversation": 2,
        "empty_turn": 1,
        "last_turn_not_response": 1,
        "missing_field": 2,
        "no_request": 1,
        "text_before_first_marker": 1,
        "wrong_type": 2,
    }
    assert s["skipped_total"] == 12


def test_malformed_skip_rejected_side_skips_the_same_lines():
    convs, ctx = load("hh_rlhf_rejected", MALFORMED, on_error="skip")
    assert [c.id for c in convs] == [
        "hh_rlhf_rejected/harmless-base/train/1",
        "hh_rlhf_rejected/harmless-base/train/14",
    ]
    assert ctx.summary()["skipped_total"] == 12
    # a line without "chosen" is malformed for the rejected dataset too
    assert ctx.skipped["missing_field"] == 2


def test_corrupt_gzip_is_a_file_error(tmp_path):
    (tmp_path / "harmless-base").mkdir()
    good = gzip.compress((VALID / "harmless-base" / "test.jsonl").read_bytes())
    (tmp_path / "harmless-base" / "test.jsonl.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(RecordError) as e:
        load("hh_rlhf_chosen", tmp_path, on_error="skip")
    assert e.value.reason == "bad_file"


# --------------------------------------------------------------------------- options


def test_side_is_fixed_by_the_name():
    with pytest.raises(ConfigError) as e:
        load("hh_rlhf_chosen", VALID, {"side": "rejected"})
    assert e.value.key == "sources.hh_rlhf_chosen.options.side"


@pytest.mark.parametrize(
    "options, key",
    [
        ({"empty_final_response": "lowest"}, "empty_final_response"),
        ({"consecutive_roles": "join"}, "consecutive_roles"),
        ({"red_team": "keep"}, "red_team"),
    ],
)
def test_bad_options(options, key):
    with pytest.raises(ConfigError) as e:
        load("hh_rlhf_rejected", VALID, options)
    assert e.value.key == f"sources.hh_rlhf_rejected.options.{key}"
