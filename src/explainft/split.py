"""Train/test splits per dataset and dimension, and the Mixed dataset.

**Per dataset.** A dataset's conversations are ordered by
``sha256(f"{seed}:{id}")``. For each dimension, walking that order over the
conversations that have a merged Item on the dimension, the first ``test``
go to the test split and the next ``train`` to the train split. One order
serves every dimension, so a conversation is in the same split on every
dimension it has an item for, and no id is ever in both splits of a cell. The
sizes are exact: too few items is an error naming the dataset, the dimension
and the counts, before anything is written.

**Mixed** (the paper's "Mixed" set). For each dimension, an equal share of the
train size from every dataset's *train* split, and of the test size from every
*test* split (when the size does not divide evenly, the first datasets in
``data.datasets`` order take one more each), keeping only examples whose
assessment has at most ``mixed_max_words`` words (the paper: explanations over
150 words excluded). Drawn in the same hash order, so Mixed train only ever
holds train examples and Mixed test only test examples.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from .errors import ConfigError
from .records import Conversation, Example, Item

MIXED = "mixed"


def order_key(seed: int, conv_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:{conv_id}".encode("utf-8")).digest()


def split_dataset(name: str, convs: Sequence[Conversation], items: Sequence[Item], dimensions: Sequence[str], *,
                  train: int, test: int, seed: int) -> dict[str, dict[str, list[Example]]]:
    """``{dimension: {"train": [...], "test": [...]}}`` for one dataset; raises ConfigError if too small."""
    by_id = {c.id: c for c in convs}
    order = sorted(by_id, key=lambda i: (order_key(seed, i), i))
    item_of: dict[tuple[str, str], Item] = {}
    for it in items:
        if it.id not in by_id:
            raise ConfigError(f"split@{name}", f"merged item {it.id!r} has no prepared conversation")
        item_of[(it.id, it.dimension)] = it
    out: dict[str, dict[str, list[Example]]] = {}
    for dim in dimensions:
        ids = [i for i in order if (i, dim) in item_of]
        if len(ids) < train + test:
            raise ConfigError("split.train", f"dataset {name!r}, dimension {dim}: {len(ids)} items, fewer than "
                                             f"split.train + split.test = {train} + {test}; lower the sizes or "
                                             "raise data.per_dataset")
        examples = [Example.of(by_id[i], item_of[(i, dim)]) for i in ids[:test + train]]
        out[dim] = {"test": examples[:test], "train": examples[test:]}
    return out


def shares(total: int, names: Sequence[str]) -> dict[str, int]:
    """``total`` split as evenly as possible over ``names``; the first ones take the remainder."""
    base, extra = divmod(total, len(names))
    return {n: base + (1 if i < extra else 0) for i, n in enumerate(names)}


def mixed_split(splits: dict[str, dict[str, dict[str, list[Example]]]], dimensions: Sequence[str], *, train: int,
                test: int, seed: int, max_words: int) -> dict[str, dict[str, list[Example]]]:
    """The Mixed set from the per-dataset splits (``{dataset: {dimension: {split: [...]}}}``)."""
    names = list(splits)
    out: dict[str, dict[str, list[Example]]] = {}
    for dim in dimensions:
        out[dim] = {}
        for part, size in (("train", train), ("test", test)):
            picked: list[Example] = []
            for name, n in shares(size, names).items():
                pool = [e for e in splits[name][dim][part] if len(e.assessment.split()) <= max_words]
                if len(pool) < n:
                    raise ConfigError("split.mixed_max_words",
                                      f"Mixed {part}, dimension {dim}: dataset {name!r} has {len(pool)} {part} "
                                      f"examples with at most {max_words} words of explanation, {n} needed")
                pool.sort(key=lambda e: (order_key(seed, e.id), e.id))
                picked.extend(pool[:n])
            out[dim][part] = picked
    return out


def split_summary(splits: dict[str, dict[str, dict[str, list[Example]]]]) -> dict[str, Any]:
    """Sizes and label counts per (set, dimension, split), for metrics/split.json."""
    summary: dict[str, Any] = {}
    for name, dims in sorted(splits.items()):
        for dim, parts in sorted(dims.items()):
            cell = {}
            for part in ("train", "test"):
                exs = parts[part]
                labels = Counter(e.label for e in exs)
                cell[part] = {"n": len(exs), "labels": {str(k): labels.get(k, 0) for k in range(1, 6)},
                              "score_mean": round(sum(e.score for e in exs) / len(exs), 6) if exs else None}
            overlap = {e.id for e in parts["train"]} & {e.id for e in parts["test"]}
            if overlap:  # cannot happen by construction; checked so a regression cannot pass silently
                raise AssertionError(f"{name}/{dim}: ids in both train and test: {sorted(overlap)[:3]}")
            summary[f"{name}/{dim}"] = cell
    return summary


def write_splits(splits: dict[str, dict[str, dict[str, list[Example]]]], root: Path) -> None:
    from .records import write_jsonl

    for name, dims in splits.items():
        for dim, parts in dims.items():
            for part, exs in parts.items():
                write_jsonl(root / name / dim / f"{part}.jsonl", exs)
