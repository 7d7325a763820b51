"""Splits: exact sizes, disjoint, deterministic; the Mixed set: equal shares, length limit, no leakage."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import ROOT

from explainft.config import load_params
from explainft.errors import ConfigError
from explainft.records import Conversation, Example, Item, Turn, read_jsonl, write_jsonl
from explainft.split import mixed_split, order_key, shares, split_dataset

DIMS = ("naturalness", "on_topic")


def data(name, n, words=5, missing=()):
    convs = [Conversation(id=f"{name}/{i}", dataset=name, turns=(Turn("user", f"q{i}"), Turn("assistant", f"a{i}")))
             for i in range(n)]
    items = [Item(id=c.id, dimension=d, score=(i % 5) / 4, label=1 + i % 5, assessment=" ".join(["w"] * (words + i % 3)),
                  confidence="sure", n_valid=12)
             for i, c in enumerate(convs) for d in DIMS if (c.id, d) not in missing]
    return convs, items


def test_split_sizes_are_exact_disjoint_and_follow_the_hash_order():
    convs, items = data("a", 50)
    out = split_dataset("a", convs, items, DIMS, train=30, test=15, seed=3)
    order = sorted((c.id for c in convs), key=lambda i: (order_key(3, i), i))
    for dim in DIMS:
        train, test = out[dim]["train"], out[dim]["test"]
        assert (len(train), len(test)) == (30, 15)
        assert not {e.id for e in train} & {e.id for e in test}
        assert [e.id for e in test] == order[:15] and [e.id for e in train] == order[15:45]
        assert all(e.dimension == dim for e in train + test)
    # the same conversation is in the same split on every dimension
    assert [e.id for e in out["naturalness"]["test"]] == [e.id for e in out["on_topic"]["test"]]
    again = split_dataset("a", list(reversed(convs)), list(reversed(items)), DIMS, train=30, test=15, seed=3)
    assert again == out
    other = split_dataset("a", convs, items, DIMS, train=30, test=15, seed=4)
    assert {e.id for e in other["on_topic"]["test"]} != {e.id for e in out["on_topic"]["test"]}


def test_a_missing_item_is_skipped_in_its_dimension_only():
    convs, items = data("a", 50, missing={("a/7", "on_topic")})
    out = split_dataset("a", convs, items, DIMS, train=40, test=9, seed=1)
    assert "a/7" not in {e.id for part in out["on_topic"].values() for e in part}
    assert len(out["on_topic"]["train"]) == 40 and len(out["naturalness"]["train"]) == 40


def test_too_few_items_or_an_orphan_item_is_an_error():
    convs, items = data("a", 20)
    with pytest.raises(ConfigError) as ei:
        split_dataset("a", convs, items, DIMS, train=15, test=10, seed=1)
    assert ei.value.key == "split.train" and "'a'" in str(ei.value) and "20 items" in str(ei.value)
    with pytest.raises(ConfigError, match="no prepared conversation"):
        split_dataset("a", convs[:-1], items, DIMS, train=5, test=5, seed=1)


def test_shares_split_evenly_and_give_the_remainder_to_the_first():
    assert shares(10, ["a", "b", "c"]) == {"a": 4, "b": 3, "c": 3}
    assert shares(9, ["a", "b", "c"]) == {"a": 3, "b": 3, "c": 3}
    assert sum(shares(10_000, list("abcdef")).values()) == 10_000


def test_mixed_takes_equal_shares_within_the_word_limit_without_leakage():
    splits = {}
    for name, words in (("a", 5), ("b", 200), ("c", 5)):
        convs, items = data(name, 60, words=words)
        splits[name] = split_dataset(name, convs, items, DIMS, train=30, test=20, seed=2)
    # b's explanations are all over the limit
    with pytest.raises(ConfigError) as ei:
        mixed_split(splits, DIMS, train=12, test=6, seed=2, max_words=150)
    assert ei.value.key == "split.mixed_max_words" and "'b'" in str(ei.value)
    # make a third of b's explanations short enough
    for dim in DIMS:
        for part in ("train", "test"):
            splits["b"][dim][part] = [Example(**{**e.__dict__, "assessment": "short one"}) if i % 3 == 0 else e
                                      for i, e in enumerate(splits["b"][dim][part])]
    mixed = mixed_split(splits, DIMS, train=13, test=6, seed=2, max_words=150)
    for dim in DIMS:
        train, test = mixed[dim]["train"], mixed[dim]["test"]
        assert len(train) == 13 and len(test) == 6
        assert [sum(e.dataset == n for e in train) for n in "abc"] == [5, 4, 4]
        assert all(len(e.assessment.split()) <= 150 for e in train + test)
        train_ids = {e.id for n in "abc" for e in splits[n][dim]["train"]}
        test_ids = {e.id for n in "abc" for e in splits[n][dim]["test"]}
        assert {e.id for e in train} <= train_ids and {e.id for e in test} <= test_ids


def test_run_split_writes_every_cell_and_its_metrics(tmp_path):
    from explainft.pipeline import run_split

    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["split"].update(train=30, test=10)
    for name in params["data"]["datasets"]:
        convs, items = data(name, 45)
        items = [Item(**{**i.__dict__, "dimension": d}) for i in items if i.dimension == "naturalness"
                 for d in ("naturalness", "comprehensiveness", "on_topic")]
        write_jsonl(tmp_path / "data" / "prepared" / f"{name}.jsonl", convs)
        write_jsonl(tmp_path / "data" / "merged" / f"{name}.jsonl", items)
    m = run_split(params, root=tmp_path)
    sets = params["data"]["datasets"] + ["mixed"]
    assert sorted(m["sets"]) == sorted(f"{s}/{d}" for s in sets for d in ("naturalness", "comprehensiveness", "on_topic"))
    for s in sets:
        train = list(read_jsonl(tmp_path / "data" / "splits" / s / "on_topic" / "train.jsonl", Example))
        test = list(read_jsonl(tmp_path / "data" / "splits" / s / "on_topic" / "test.jsonl", Example))
        assert (len(train), len(test)) == (30, 10)
    assert m["sets"]["mixed/on_topic"]["train"]["n"] == 30
    assert json.loads((tmp_path / "metrics" / "split.json").read_text()) == m
    # too large a split fails before anything is written
    params["split"]["train"] = 500
    (tmp_path / "data" / "splits").rename(tmp_path / "old")
    with pytest.raises(ConfigError):
        run_split(params, root=tmp_path)
    assert not (tmp_path / "data" / "splits").exists()
