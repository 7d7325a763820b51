"""Splits: exact sizes, disjoint, deterministic, by group across every dataset; the Mixed set: equal shares,
length limit, no leakage; metrics/split.json's cross-set group overlap."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import ROOT

from explainft.config import (
    Sizes,  # noqa: E402
    load_params,
    split_config,
)
from explainft.errors import ConfigError
from explainft.records import Conversation, Example, Item, Turn, read_jsonl, write_jsonl
from explainft.split import (
    PARTS,
    group_leaks,
    mixed_split,
    order_key,
    shares,
    split_dataset,
    split_datasets,
    split_summary,
)

DIMS = ("naturalness", "on_topic")


def data(name, n, words=5, missing=(), group=None):
    """n conversations of dataset ``name``; ``group(i)`` names conversation i's group (default: its id)."""
    convs = [
        Conversation(
            id=f"{name}/{i}",
            dataset=name,
            turns=(Turn("user", f"q{i}"), Turn("assistant", f"a{i}")),
            group=group(i) if group else None,
        )
        for i in range(n)
    ]
    items = [
        Item(
            id=c.id,
            dimension=d,
            score=(i % 5) / 4,
            label=1 + i % 5,
            assessment=" ".join(["w"] * (words + i % 3)),
            confidence="sure",
            n_valid=12,
        )
        for i, c in enumerate(convs)
        for d in DIMS
        if (c.id, d) not in missing
    ]
    return convs, items


def test_split_sizes_are_exact_disjoint_and_follow_the_hash_order():
    convs, items = data("a", 60)
    out = split_dataset("a", convs, items, DIMS, sizes=Sizes(train=30, validation=10, test=15), seed=3)
    order = sorted((c.id for c in convs), key=lambda i: (order_key(3, i), i))  # one conversation per group here
    for dim in DIMS:
        parts = out[dim]
        assert {p: len(parts[p]) for p in PARTS} == {"train": 30, "validation": 10, "test": 15}
        assert [e.id for e in parts["test"]] == order[:15]
        assert [e.id for e in parts["validation"]] == order[15:25]
        assert [e.id for e in parts["train"]] == order[25:55]
        assert all(e.dimension == dim for p in PARTS for e in parts[p])
    # the same conversation is in the same split on every dimension
    for p in PARTS:
        assert [e.id for e in out["naturalness"][p]] == [e.id for e in out["on_topic"][p]]
    sizes = Sizes(train=30, validation=10, test=15)
    assert split_dataset("a", list(reversed(convs)), list(reversed(items)), DIMS, sizes=sizes, seed=3) == out
    other = split_dataset("a", convs, items, DIMS, sizes=sizes, seed=4)
    assert {e.id for e in other["on_topic"]["test"]} != {e.id for e in out["on_topic"]["test"]}


def test_a_missing_item_is_skipped_in_its_dimension_only():
    convs, items = data("a", 60, missing={("a/7", "on_topic")})
    out = split_dataset("a", convs, items, DIMS, sizes=Sizes(train=40, validation=5, test=9), seed=1)
    assert "a/7" not in {e.id for part in out["on_topic"].values() for e in part}
    assert len(out["on_topic"]["train"]) == 40 and len(out["naturalness"]["train"]) == 40


def test_too_few_items_or_an_orphan_item_is_an_error():
    convs, items = data("a", 20)
    with pytest.raises(ConfigError) as ei:
        split_dataset("a", convs, items, DIMS, sizes=Sizes(train=15, validation=2, test=10), seed=1)
    assert (
        ei.value.key == "split.train"
        and "'a'" in str(ei.value)
        and "merged items per dataset" in str(ei.value)
        and "20" in str(ei.value)
    )
    with pytest.raises(ConfigError) as ei:
        split_dataset("a", convs, items, DIMS, sizes=Sizes(train=5, validation=20, test=2), seed=1)
    assert ei.value.key == "split.validation"
    with pytest.raises(ConfigError, match="no prepared conversation"):
        split_dataset("a", convs[:-1], items, DIMS, sizes=Sizes(train=5, validation=1, test=5), seed=1)


def twins(n=120, family=3):
    """Two datasets of twins (``x/i`` and ``y/i`` share group ``g<i>``) whose groups also hold ``family`` items each
    in x (several responses to one prompt), like chatterbot and its perturbed twin, or HelpSteer."""
    data_x = data("x", n, group=lambda i: f"g{i // family}")
    data_y = data("y", n, group=lambda i: f"g{i // family}")
    return {"x": data_x, "y": data_y}


def test_a_group_lies_in_one_part_across_every_dataset_and_dimension():
    splits, groups = split_datasets(twins(), DIMS, sizes=Sizes(train=45, validation=15, test=24), seed=11)
    part_of: dict[str, str] = {}
    for name in ("x", "y"):
        for dim in DIMS:
            assert {p: len(splits[name][dim][p]) for p in PARTS} == {"train": 45, "validation": 15, "test": 24}
            for p in PARTS:
                for e in splits[name][dim][p]:
                    assert part_of.setdefault(e.group, p) == p, f"{e.group} in {part_of[e.group]} and {p}"
    # 40 groups of 3 items: 24 test items are 8 groups, 15 validation items 5, 45 train items 15; 12 left over
    assert groups == {"total": 40, "test": 8, "validation": 5, "train": 15, "unused": 12}
    # the same (twin) groups are taken in both datasets
    for p in PARTS:
        assert {e.group for e in splits["y"]["on_topic"][p]} == {e.group for e in splits["x"]["on_topic"][p]}


def test_the_old_per_dataset_split_leaks_twins_and_split_json_counts_it():
    """A negative control: splitting each dataset by the hash of its own ids (what the pipeline did) puts twins on
    both sides, and group_leaks counts them; the group-aware split gives zero on every pair, Mixed included."""
    data_ = twins(family=1)
    per_dataset = {}
    for name, (convs, items) in data_.items():
        # ids as groups: the old behaviour
        ungrouped = [Conversation(id=c.id, dataset=c.dataset, turns=c.turns) for c in convs]
        per_dataset[name] = split_dataset(name, ungrouped, items, DIMS, sizes=Sizes(45, 15, 24), seed=11)
    # relabel the groups afterwards to measure the twins' overlap
    relabeled = {
        n: {
            d: {
                p: [Example(**{**e.__dict__, "group": "g" + e.id.split("/")[1]}) for e in exs]
                for p, exs in parts.items()
            }
            for d, parts in dims.items()
        }
        for n, dims in per_dataset.items()
    }
    leaks = group_leaks(relabeled)
    assert leaks["test_in_train"]["x -> y"] > 0 and leaks["test_in_train"]["y -> x"] > 0
    assert leaks["test_in_train"]["x -> x"] == 0
    with pytest.raises(AssertionError, match="straddle"):
        split_summary(relabeled)

    splits, _ = split_datasets(data_, DIMS, sizes=Sizes(45, 15, 24), seed=11)
    splits["mixed"] = mixed_split(splits, DIMS, sizes=Sizes(20, 8, 10), seed=11, max_words=150)
    summary = split_summary(splits)
    assert summary["group_overlap_total"] == 0
    assert set(summary["group_overlap"]) == {"test_in_train", "validation_in_train", "test_in_validation"}
    assert set(summary["group_overlap"]["test_in_train"]) == {
        f"{a} -> {b}" for a in ("mixed", "x", "y") for b in ("mixed", "x", "y")
    }
    assert all(v == 0 for pairs in summary["group_overlap"].values() for v in pairs.values())
    assert summary["sets"]["x/on_topic"]["test"] == {
        "n": 24,
        "groups": 24,
        "labels": summary["sets"]["x/on_topic"]["test"]["labels"],
        "score_mean": summary["sets"]["x/on_topic"]["test"]["score_mean"],
    }


def test_a_group_that_fills_a_part_leaves_its_rest_out_rather_than_moving_it():
    # one giant group of 10 in x and singletons: whichever part it lands in, its extra items are unused
    convs, items = data("x", 40, group=lambda i: "big" if i < 10 else f"s{i}")
    out = split_dataset("x", convs, items, DIMS, sizes=Sizes(train=12, validation=3, test=4), seed=5)
    big = [p for p in PARTS for e in out["on_topic"][p] if e.group == "big"]
    assert len(set(big)) <= 1


def test_shares_split_evenly_and_give_the_remainder_to_the_first():
    assert shares(10, ["a", "b", "c"]) == {"a": 4, "b": 3, "c": 3}
    assert shares(9, ["a", "b", "c"]) == {"a": 3, "b": 3, "c": 3}
    assert sum(shares(10_000, list("abcdef")).values()) == 10_000


def test_mixed_takes_equal_shares_within_the_word_limit_without_leakage():
    inputs = {name: data(name, 70, words=words) for name, words in (("a", 5), ("b", 200), ("c", 5))}
    splits, _ = split_datasets(inputs, DIMS, sizes=Sizes(train=30, validation=9, test=20), seed=2)
    # b's explanations are all over the limit
    with pytest.raises(ConfigError) as ei:
        mixed_split(splits, DIMS, sizes=Sizes(train=12, validation=3, test=6), seed=2, max_words=150)
    assert ei.value.key == "split.mixed_max_words" and "'b'" in str(ei.value)
    # make a third of b's explanations short enough
    for dim in DIMS:
        for part in PARTS:
            splits["b"][dim][part] = [
                Example(**{**e.__dict__, "assessment": "short one"}) if i % 3 == 0 else e
                for i, e in enumerate(splits["b"][dim][part])
            ]
    mixed = mixed_split(splits, DIMS, sizes=Sizes(train=13, validation=3, test=6), seed=2, max_words=150)
    for dim in DIMS:
        assert {p: len(mixed[dim][p]) for p in PARTS} == {"train": 13, "validation": 3, "test": 6}
        assert [sum(e.dataset == n for e in mixed[dim]["train"]) for n in "abc"] == [5, 4, 4]
        for part in PARTS:
            assert all(len(e.assessment.split()) <= 150 for e in mixed[dim][part])
            own = {e.id for n in "abc" for e in splits[n][dim][part]}
            assert {e.id for e in mixed[dim][part]} <= own


def test_split_validation_is_required_and_positive():
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    assert split_config(params).sizes() == Sizes(train=500, validation=100, test=200)
    del params["split"]["validation"]
    with pytest.raises(ConfigError) as ei:
        split_config(params)
    assert ei.value.key == "split.validation" and "added to split.train" in str(ei.value)
    params["split"]["validation"] = 0
    with pytest.raises(ConfigError) as ei:
        split_config(params)
    assert ei.value.key == "split.validation"


def test_run_split_writes_every_cell_and_its_metrics(tmp_path):
    from explainft.stages.split import run as run_split

    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["split"].update(train=30, validation=6, test=10)
    for name in params["data"]["datasets"]:
        # twins across the datasets: conversation i of every dataset shares group g<i>
        convs, items = data(name, 55, group=lambda i: f"g{i}")
        items = [
            Item(**{**i.__dict__, "dimension": d})
            for i in items
            if i.dimension == "naturalness"
            for d in ("naturalness", "comprehensiveness", "on_topic")
        ]
        write_jsonl(tmp_path / "data" / "prepared" / f"{name}.jsonl", convs)
        write_jsonl(tmp_path / "data" / "merged" / f"{name}.jsonl", items)
    m = run_split(params, root=tmp_path)
    sets = params["data"]["datasets"] + ["mixed"]
    assert sorted(m["sets"]) == sorted(
        f"{s}/{d}" for s in sets for d in ("naturalness", "comprehensiveness", "on_topic")
    )
    for s in sets:
        n = {
            p: len(list(read_jsonl(tmp_path / "data" / "splits" / s / "on_topic" / f"{p}.jsonl", Example)))
            for p in PARTS
        }
        assert n == {"train": 30, "validation": 6, "test": 10}
    assert m["sets"]["mixed/on_topic"]["train"]["n"] == 30
    assert (m["train"], m["validation"], m["test"]) == (30, 6, 10)
    assert m["group_overlap_total"] == 0 and m["groups"]["total"] == 55
    assert json.loads((tmp_path / "metrics" / "split.json").read_text()) == m
    # too large a split fails before anything is written
    params["split"]["train"] = 500
    (tmp_path / "data" / "splits").rename(tmp_path / "old")
    with pytest.raises(ConfigError):
        run_split(params, root=tmp_path)
    assert not (tmp_path / "data" / "splits").exists()
