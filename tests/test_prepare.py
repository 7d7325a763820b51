"""The prepare step: seeded hash sampling, metrics, and its errors."""

from __future__ import annotations

import json
import random

import pytest
from conftest import FIXTURES

from explainft.datasets.base import LoadContext
from explainft.datasets.prepare import prepare, sample, sample_key
from explainft.errors import ConfigError, RecordError
from explainft.records import Conversation, Turn

RAW = FIXTURES / "chatterbot"


def make(n, prefix="d"):
    return [
        Conversation(id=f"{prefix}/{i}", dataset=prefix, turns=(Turn("user", f"q{i}"), Turn("assistant", f"a{i}")))
        for i in range(n)
    ]


def ids(convs):
    return [c.id for c in convs]


def test_sample_is_the_k_smallest_hash_keys_whatever_the_input_order():
    convs = make(200)
    ctx = LoadContext("d")
    picked, total = sample(convs, 20, seed=7, ctx=ctx)
    assert total == 200 and len(picked) == 20
    expected = sorted(convs, key=lambda c: (sample_key(7, c.id), c.id))[:20]
    assert ids(picked) == ids(expected)
    shuffled = convs[:]
    random.Random(3).shuffle(shuffled)
    assert ids(sample(shuffled, 20, 7, LoadContext("d"))[0]) == ids(picked)
    # another seed, another sample
    assert set(ids(sample(convs, 20, 8, LoadContext("d"))[0])) != set(ids(picked))


def test_sample_is_keyed_by_group_so_twins_are_sampled_together():
    """Two datasets of twins (different ids, one group per pair) sample the same groups; a group's members are
    kept together (the key is the group's, ties broken by id)."""

    def twins(prefix):
        return [
            Conversation(
                id=f"{prefix}/{i}",
                dataset=prefix,
                group=f"g{i // 2}",
                turns=(Turn("user", f"q{i // 2}"), Turn("assistant", f"{prefix} a{i}")),
            )
            for i in range(100)
        ]

    a, _ = sample(twins("a"), 20, seed=5, ctx=LoadContext("a"))
    b, _ = sample(twins("b"), 20, seed=5, ctx=LoadContext("b"))
    assert [c.group for c in a] == [c.group for c in b]
    assert len({c.group for c in a}) == 10  # 10 whole groups of 2
    assert [c.group for c in a] == sorted((c.group for c in a), key=lambda g: (sample_key(5, g), g))


def test_sample_is_stable_when_the_source_grows():
    small, big = make(100), make(300)
    s_small = set(ids(sample(small, 30, 1, LoadContext("d"))[0]))
    s_big = set(ids(sample(big, 30, 1, LoadContext("d"))[0]))
    # every id of the small source that the big sample keeps was also in the small sample
    assert (s_big & set(ids(small))) <= s_small


def test_sample_all_and_more_than_available():
    convs = make(10)
    assert len(sample(convs, None, 1, LoadContext("d"))[0]) == 10
    assert len(sample(convs, 50, 1, LoadContext("d"))[0]) == 10


def test_duplicate_ids_raise_or_are_counted():
    convs = make(5) + make(2)
    with pytest.raises(RecordError) as ei:
        sample(convs, None, 1, LoadContext("d"))
    assert ei.value.reason == "duplicate_id" and ei.value.record == "d/0"
    ctx = LoadContext("d", on_error="skip")
    picked, total = sample(convs, None, 1, ctx)
    assert total == 5 and dict(ctx.skipped) == {"duplicate_id": 2}


def test_prepare_writes_identical_bytes_for_identical_params(tmp_path):
    a = prepare("chatterbot", RAW, tmp_path / "a.jsonl", tmp_path / "a.json", per_dataset=5, seed=3, on_error="skip")
    b = prepare("chatterbot", RAW, tmp_path / "b.jsonl", tmp_path / "b.json", per_dataset=5, seed=3, on_error="skip")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert a == b
    c = prepare("chatterbot", RAW, tmp_path / "c.jsonl", tmp_path / "c.json", per_dataset=5, seed=4, on_error="skip")
    assert (tmp_path / "c.jsonl").read_bytes() != (tmp_path / "a.jsonl").read_bytes()
    assert c["sampled"] == 5


def test_prepare_metrics_account_for_every_source_record(tmp_path):
    m = prepare("chatterbot", RAW, tmp_path / "o.jsonl", tmp_path / "m.json", per_dataset=100, seed=1, on_error="skip")
    on_disk = json.loads((tmp_path / "m.json").read_text())
    assert on_disk == m
    assert m["source_records"] == 12
    assert m["conversations"] == 9 and m["sampled"] == 9
    assert m["skipped"] == {"wrong_type": 2} and m["skipped_total"] == 2
    assert m["dropped"] == {"too_short": 1} and m["dropped_total"] == 1
    # nothing lost: each source record became a conversation, a skip or a drop
    assert m["conversations"] + m["skipped_total"] + m["dropped_total"] == m["source_records"]
    assert m["options"] == {
        "min_lines": 2,
        "duplicates": "drop",
        "perturb_seed": None,
        "keep_share": None,
        "double_share": None,
        "kinds": None,
        "truncate_keep": None,
    }
    assert m["sample_stats"]["turns_max"] == 3
    assert m["n_files"] == 3
    assert list(on_disk) == sorted(on_disk)
    lines = (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 9 and all(json.loads(x)["dataset"] == "chatterbot" for x in lines)


@pytest.mark.parametrize("bad", [0, -3, "10", True, 2.5])
def test_prepare_rejects_bad_per_dataset(tmp_path, bad):
    with pytest.raises(ConfigError) as ei:
        prepare("chatterbot", RAW, tmp_path / "o.jsonl", tmp_path / "m.json", per_dataset=bad, seed=1)
    assert ei.value.key == "data.per_dataset"
    assert not (tmp_path / "o.jsonl").exists()


def test_prepare_errors_before_writing(tmp_path):
    with pytest.raises(RecordError) as ei:  # on_error=raise meets the malformed dialogue
        prepare("chatterbot", RAW, tmp_path / "o.jsonl", tmp_path / "m.json", per_dataset=5, seed=1)
    assert ei.value.reason == "wrong_type"
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "m.json").exists()
    with pytest.raises(RecordError, match="does not exist"):
        prepare("chatterbot", tmp_path / "nowhere", tmp_path / "o.jsonl", tmp_path / "m.json", per_dataset=5, seed=1)
    empty = tmp_path / "empty"
    (empty / "data").mkdir(parents=True)
    (empty / "data" / "x.yml").write_text("conversations:\n- - only one line\n", encoding="utf-8")
    with pytest.raises(RecordError) as ei:
        prepare("chatterbot", empty, tmp_path / "o.jsonl", tmp_path / "m.json", per_dataset=5, seed=1)
    assert ei.value.reason == "empty_dataset" and "1 dropped" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        prepare("no_such_set", RAW, tmp_path / "o.jsonl", tmp_path / "m.json", per_dataset=5, seed=1)
    assert "chatbot_arena" in str(ei.value) and "cornell_movie_dialogs" in str(ei.value)
