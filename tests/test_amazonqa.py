"""The AmazonQA loader: ``*-qar.jsonl`` in the format of the authors' create_data.py + convert0.py."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, load

from explainft.datasets.prepare import iter_conversations, prepare
from explainft.errors import ConfigError, RecordError
from explainft.records import Conversation, read_jsonl

VALID = FIXTURES / "amazonqa" / "valid"
MALFORMED = FIXTURES / "amazonqa" / "malformed"
KEYS = [
    "asin",
    "category",
    "questionText",
    "questionType",
    "review_snippets",
    "random_sentence",
    "top_sentences_IR",
    "top_review_wilson",
    "top_review_helpful",
    "answers",
    "is_answerable",
    "qid",
]


def by_id(convs):
    return {c.id: c for c in convs}


def test_fixtures_have_exactly_the_published_keys():
    for name in ("train-qar.jsonl", "val-qar.jsonl", "test-qar.jsonl"):
        for line in (VALID / name).read_text(encoding="ascii").splitlines():
            if line:
                obj = json.loads(line)
                assert list(obj) == KEYS or list(obj) == KEYS[:-1]  # qid is added by convert0.py


def test_one_conversation_per_question_with_snippets_as_context():
    convs, ctx = load("amazonqa", VALID)
    got = by_id(convs)
    assert list(got) == [
        "amazonqa/train-0",
        "amazonqa/train-1",
        "amazonqa/train-2",
        "amazonqa/train-5",
        "amazonqa/train-6",
        "amazonqa/val-0",
        "amazonqa/val-line2",
        "amazonqa/test-0",
    ]
    c = got["amazonqa/train-0"]
    assert [(t.role, t.text) for t in c.turns] == [
        ("user", "Does this charger work with a 2015 laptop?"),
        ("assistant", "Yes, it works with my 2015 model."),
    ]
    assert c.context == (
        "I used it with my old laptop from 2014 and it charged without problems.\n\n"
        "The plug fits most laptops made after 2012. It gets a little warm.\n\n"
        "Cable is long enough to reach the couch."
    )
    assert c.dataset == "amazonqa"
    assert c.meta == {
        "asin": "B000FJ1ABC",
        "category": "Electronics",
        "questionType": "yesno",
        "is_answerable": 1,
        "answerType": "Y",
        "helpful": [4, 5],
        "answer_index": 0,
        "n_answers": 1,
        "split": "train",
        "qid": 0,
        "source": {"file": "train-qar.jsonl", "line": 1},
    }
    # the blank line 4 is not a record; line numbers stay those of the file
    assert got["amazonqa/train-5"].meta["source"] == {"file": "train-qar.jsonl", "line": 7}
    assert ctx.files == ["train-qar.jsonl", "val-qar.jsonl", "test-qar.jsonl"]  # not *_squad.jsonl, not SOURCE.json
    assert ctx.source_records == 10
    assert ctx.summary()["skipped_total"] == 0


def test_most_helpful_votes_then_ratio_then_position():
    convs, ctx = load("amazonqa", VALID)
    got = by_id(convs)
    # [3, 10] vs [3, 4] vs [1, 1]: a tie on votes, won by the ratio 3/4
    assert got["amazonqa/train-1"].response.text == "Six feet, measured it myself."
    assert got["amazonqa/train-1"].meta["answer_index"] == 1
    assert got["amazonqa/train-1"].meta["n_answers"] == 3
    # the empty answer with 5 votes is skipped; [0, 0] vs [0, 0] (ratio 0 when the total is 0): the first wins
    assert got["amazonqa/train-2"].response.text == "Yes, top rack."
    assert got["amazonqa/train-2"].meta["answer_index"] == 1
    # [1, 1] vs [1, 2]: the ratio decides
    assert got["amazonqa/val-line2"].response.text == "Around 4 pounds."
    assert ctx.policy["picked_one_of_several"] == 3
    assert ctx.policy["tie_broken_by_ratio"] == 2
    assert ctx.policy["tie_broken_by_position"] == 1


def test_drops_and_skips_are_counted():
    _, ctx = load("amazonqa", VALID)
    summary = ctx.summary()
    assert summary["dropped"] == {"no_answers": 1, "only_empty_answers": 1}
    assert summary["policy"]["empty_answer_skipped"] == 1  # only the one inside a list with usable answers
    assert summary["policy"]["empty_snippet"] == 1
    assert summary["policy"]["no_snippets"] == 1
    assert summary["policy"]["qid_from_line"] == 1


def test_each_answer_makes_its_own_conversation():
    convs, ctx = load("amazonqa", VALID, {"answer": "each"})
    got = by_id(convs)
    assert [i for i in got if i.startswith("amazonqa/train-1/")] == [
        "amazonqa/train-1/a0",
        "amazonqa/train-1/a1",
        "amazonqa/train-1/a2",
    ]
    # the empty answer a0 of qid 2 is skipped; the index is that of the source list
    assert [i for i in got if i.startswith("amazonqa/train-2/")] == ["amazonqa/train-2/a1", "amazonqa/train-2/a2"]
    assert got["amazonqa/train-2/a2"].response.text == "I hand wash mine."
    assert got["amazonqa/train-2/a2"].context == got["amazonqa/train-2/a1"].context
    assert len(convs) == 12  # 1 + 3 + 2 + 1 + 1 (train) + 1 + 2 (val) + 1 (test)
    assert "picked_one_of_several" not in ctx.policy and "tie_broken_by_ratio" not in ctx.policy
    assert ctx.policy["empty_answer_skipped"] == 1


def test_no_snippets_and_context_none():
    got = by_id(load("amazonqa", VALID)[0])
    assert got["amazonqa/train-5"].context is None
    assert got["amazonqa/train-5"].meta["is_answerable"] == 0
    assert got["amazonqa/train-5"].meta["answerType"] == "?"
    convs, ctx = load("amazonqa", VALID, {"context": "none"})
    assert all(c.context is None for c in convs)
    assert "no_snippets" not in ctx.policy and "empty_snippet" not in ctx.policy


def test_text_is_kept_exactly():
    got = by_id(load("amazonqa", VALID)[0])
    c = got["amazonqa/train-6"]
    assert c.turns[0].text == "Est-ce que le caf\u00e9 est d\u00e9caf\u00e9in\u00e9?"
    assert c.response.text == "Non \u2013 il contient de la caf\u00e9ine \u2615"
    # a U+2028 inside a JSON string is data, not a line break
    assert c.context.endswith("Line\u2028separator inside a snippet.")


def test_ids_unique_across_splits_although_qid_restarts_per_file():
    convs, _ = load("amazonqa", VALID)
    qid0 = [c.id for c in convs if c.meta["qid"] == 0]
    assert qid0 == ["amazonqa/train-0", "amazonqa/val-0", "amazonqa/test-0"]
    assert len({c.id for c in convs}) == len(convs)


def test_splits_option():
    convs, ctx = load("amazonqa", VALID, {"splits": ["val"]})
    assert {c.meta["split"] for c in convs} == {"val"}
    assert ctx.files == ["val-qar.jsonl"]
    convs, ctx = load("amazonqa", VALID, {"splits": ["test", "train"]})
    assert ctx.files == ["test-qar.jsonl", "train-qar.jsonl"]
    with pytest.raises(RecordError) as e:
        load("amazonqa", VALID, {"splits": ["validation"]})
    assert e.value.reason == "missing_file" and "'validation'" in str(e.value)
    for bad in ([], ["train", "train"], ["train", 3], "train"):
        with pytest.raises(ConfigError) as ce:
            load("amazonqa", VALID, {"splits": bad})
        assert ce.value.key == "sources.amazonqa.options.splits"


def test_bad_options():
    with pytest.raises(ConfigError) as e:
        load("amazonqa", VALID, {"answer": "best"})
    assert e.value.key == "sources.amazonqa.options.answer"
    with pytest.raises(ConfigError) as e:
        load("amazonqa", VALID, {"snippets": True})
    assert e.value.key == "sources.amazonqa.options.snippets"


def _gzip(src: Path, dst: Path) -> None:
    with open(src, "rb") as fi, gzip.open(dst, "wb") as fo:
        shutil.copyfileobj(fi, fo)


def test_gzipped_files_read_the_same(tmp_path):
    for split in ("train", "val", "test"):
        _gzip(VALID / f"{split}-qar.jsonl", tmp_path / f"{split}-qar.jsonl.gz")
    plain, _ = load("amazonqa", VALID)
    gz, ctx = load("amazonqa", tmp_path)
    assert [c.to_dict() | {"meta": None} for c in gz] == [c.to_dict() | {"meta": None} for c in plain]
    assert gz[0].meta["source"] == {"file": "train-qar.jsonl.gz", "line": 1}
    assert ctx.files == ["train-qar.jsonl.gz", "val-qar.jsonl.gz", "test-qar.jsonl.gz"]


def test_a_split_in_two_files_is_an_error(tmp_path):
    shutil.copy(VALID / "train-qar.jsonl", tmp_path / "train-qar.jsonl")
    _gzip(VALID / "train-qar.jsonl", tmp_path / "train-qar.jsonl.gz")
    with pytest.raises(RecordError) as e:
        load("amazonqa", tmp_path, {"splits": ["train"]})
    assert e.value.reason == "duplicate_file"


def test_lines_are_streamed(tmp_path):
    """The first conversation comes out before a later bad line is read."""
    lines = (MALFORMED / "train-qar.jsonl").read_bytes().split(b"\n")
    (tmp_path / "train-qar.jsonl").write_bytes(lines[0] + b"\n" + lines[1] + b"\n")
    it, _, _ = iter_conversations("amazonqa", tmp_path, {"splits": ["train"]})
    assert next(it).id == "amazonqa/train-0"
    with pytest.raises(RecordError) as e:
        next(it)
    assert e.value.reason == "bad_json" and e.value.line == 2


# line of tests/fixtures/amazonqa/malformed/train-qar.jsonl -> (reason, field)
MALFORMED_LINES = {
    2: ("bad_json", None),
    3: ("missing_field", "questionText"),
    4: ("wrong_type", "answers"),
    5: ("wrong_type", "answers[2].helpful"),
    6: ("wrong_type", "answers[0].helpful"),
    7: ("wrong_type", "answers[0].helpful"),
    8: ("bad_encoding", None),
    9: ("wrong_type", "answers[1]"),
    10: ("wrong_type", "is_answerable"),
    11: ("wrong_type", None),
    12: ("empty_turn", "questionText"),
    13: ("wrong_type", "answers[0].helpful"),
    14: ("wrong_type", "qid"),
    15: ("missing_field", "answers[0].answerType"),
}


@pytest.mark.parametrize("lineno", sorted(MALFORMED_LINES))
def test_malformed_line_raises_naming_file_line_and_field(tmp_path, lineno):
    lines = (MALFORMED / "train-qar.jsonl").read_bytes().split(b"\n")
    path = tmp_path / "train-qar.jsonl"
    path.write_bytes(lines[0] + b"\n" + lines[lineno - 1] + b"\n")
    with pytest.raises(RecordError) as e:
        load("amazonqa", tmp_path, {"splits": ["train"]})
    reason, field = MALFORMED_LINES[lineno]
    assert (e.value.reason, e.value.field, e.value.line) == (reason, field, 2)
    assert e.value.file == str(path)
    assert f"{path}:2" in str(e.value)


def test_malformed_file_in_skip_mode_counts_every_bad_line():
    convs, ctx = load("amazonqa", MALFORMED, {"splits": ["train"]}, on_error="skip")
    assert [c.id for c in convs] == ["amazonqa/train-0", "amazonqa/train-15"]
    expected: dict[str, int] = {}
    for reason, _ in MALFORMED_LINES.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(ctx.skipped) == expected
    assert ctx.source_records == 16
    assert not ctx.dropped and not ctx.policy


def test_prepare_writes_the_sample_and_its_counts(tmp_path):
    metrics = prepare("amazonqa", VALID, tmp_path / "out.jsonl", tmp_path / "metrics.json", per_dataset=None, seed=1)
    assert metrics["conversations"] == 8
    assert metrics["options"] == {"answer": "most_helpful", "context": "snippets", "splits": ["train", "val", "test"]}
    assert metrics["dropped"] == {"no_answers": 1, "only_empty_answers": 1}
    assert metrics["sample_stats"]["with_context"] == 7
    # read back with the project's reader (a raw U+2028 in the text is not a line break)
    written = {c.id: c for c in read_jsonl(tmp_path / "out.jsonl", Conversation)}
    assert written == by_id(load("amazonqa", VALID)[0])
