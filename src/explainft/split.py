"""Train / validation / test splits per dataset and dimension, and the Mixed set, by group.

**Groups, not conversations.** Related conversations share a ``group``
(:attr:`explainft.records.Conversation.group`: a conversation and its perturbed
twin, the two sides of an Arena battle, HH-RLHF's chosen and rejected
transcripts, the items of one CoQA story, any two records asking the same
thing). A group is assigned to exactly one part (``test``, ``validation`` or
``train``) for **every dataset and dimension at once**, so no group straddles
a split anywhere, Mixed included.

**The assignment.** Every group of every dataset is ordered by
``sha256(f"{seed}:{group}")`` (then its name). Walking that order, a group goes
to the first part, in the order test, validation, train, that some
(dataset, dimension) among its items still needs; a group that no
(dataset, dimension) needs any more is left out (counted as ``unused``). Each
(dataset, dimension, part) then takes its items from its part's groups in that
order, up to the part's size: the sizes are exact, and an item past the size
(the rest of a group that filled it) is left out, never moved to another part.
Too few items for a part is an error naming the dataset, the dimension, the
part and the counts, before anything is written.

**Sizes.** ``split.train``, ``split.validation`` and ``split.test`` are three
disjoint sizes: the validation split is added to the others, not carved from
train. The validation split serves every choice made from data (the training
objective, epochs, the logit lens); the test split is read only by
evaluation.

**Mixed** (the paper's "Mixed" set). For each dimension and part, an equal
share of the part's size from every dataset's split of that part (when the size
does not divide evenly, the first datasets in ``data.datasets`` order take one
more each), keeping only examples whose assessment has at most
``mixed_max_words`` words (the paper: explanations over 150 words excluded).
Mixed parts only hold their own part's examples, so Mixed inherits the groups'
assignment.

:func:`split_summary` reports, for every ordered pair of sets, how many of one
set's test (and validation) groups are in the other's train split (and test
groups in its validation split): all zero by construction, and checked.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from .config.split import Sizes
from .errors import ConfigError
from .records import Conversation, Example, Item, write_jsonl

PARTS = ("train", "validation", "test")  # file names and report order
FILL_ORDER = ("test", "validation", "train")  # the order a group's part is decided in
# (held-out part, part it must not meet): the pairs split.json reports
LEAK_CHECKS = (("test", "train"), ("validation", "train"), ("test", "validation"))


def order_key(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()


def _examples(
    name: str, convs: Sequence[Conversation], items: Sequence[Item], dimensions: Sequence[str]
) -> dict[str, list[Example]]:
    """``{dimension: [Example]}`` joining one dataset's merged items to their conversations."""
    by_id = {c.id: c for c in convs}
    out: dict[str, list[Example]] = {d: [] for d in dimensions}
    for it in items:
        if it.id not in by_id:
            raise ConfigError(f"split@{name}", f"merged item {it.id!r} has no prepared conversation")
        if it.dimension in out:
            out[it.dimension].append(Example.of(by_id[it.id], it))
    return out


def assign_groups(
    examples: Mapping[str, Mapping[str, Sequence[Example]]], sizes: Sizes, seed: int
) -> tuple[dict[str, str], list[str]]:
    """(``{group: part}``, every group in hash order) for ``{dataset: {dimension: [Example]}}``; see the module
    docstring. Groups no cell needs are absent from the mapping."""
    members: dict[str, Counter] = defaultdict(Counter)  # group -> {(dataset, dimension): items}
    for name, dims in examples.items():
        for dim, exs in dims.items():
            for e in exs:
                members[e.group][(name, dim)] += 1
    order = sorted(members, key=lambda g: (order_key(seed, g), g))
    need = {(name, dim, part): sizes.of(part) for name, dims in examples.items() for dim in dims for part in PARTS}
    part_of: dict[str, str] = {}
    for g in order:
        for part in FILL_ORDER:
            if any(need[(n, d, part)] > 0 for n, d in members[g]):
                part_of[g] = part
                for (n, d), k in members[g].items():
                    need[(n, d, part)] -= k
                break
    return part_of, order


def split_datasets(
    data: Mapping[str, tuple[Sequence[Conversation], Sequence[Item]]],
    dimensions: Sequence[str],
    *,
    sizes: Sizes,
    seed: int,
) -> tuple[dict[str, dict[str, dict[str, list[Example]]]], dict[str, Any]]:
    """Split every dataset at once: (``{dataset: {dimension: {part: [Example]}}}``, group counts).

    ``data`` maps each dataset to its prepared conversations and merged items. Raises ConfigError (nothing is
    written) when a (dataset, dimension, part) cannot be filled.
    """
    examples = {name: _examples(name, convs, items, dimensions) for name, (convs, items) in data.items()}
    part_of, order = assign_groups(examples, sizes, seed)
    rank = {g: i for i, g in enumerate(order)}
    out: dict[str, dict[str, dict[str, list[Example]]]] = {}
    short: list[tuple[int, str, str]] = []  # (fill rank of the part, the part, the message)
    for name, dims in examples.items():
        out[name] = {}
        for dim in dimensions:
            pools: dict[str, list[Example]] = {p: [] for p in PARTS}
            for e in dims[dim]:
                if e.group in part_of:
                    pools[part_of[e.group]].append(e)
            out[name][dim] = {}
            for part in PARTS:
                pool = sorted(pools[part], key=lambda e: (rank[e.group], order_key(seed, e.id), e.id))
                n = sizes.of(part)
                if len(pool) < n:
                    short.append(
                        (
                            FILL_ORDER.index(part),
                            part,
                            f"dataset {name!r}, dimension {dim}: {len(pool)} items for the {part} split, "
                            f"fewer than split.{part} = {n}",
                        )
                    )
                out[name][dim][part] = pool[:n]
    if short:
        short.sort(key=lambda x: x[0])
        total = {name: {d: len(exs) for d, exs in dims.items()} for name, dims in examples.items()}
        raise ConfigError(
            f"split.{short[0][1]}",
            "; ".join(m for _, _, m in short) + f" (merged items per dataset and dimension: {total}; "
            "the parts are filled by group, test first); lower split.train/validation/test or raise "
            "data.per_dataset",
        )
    counts = Counter(part_of.values())
    groups = {"total": len(order), **{p: counts.get(p, 0) for p in PARTS}, "unused": len(order) - len(part_of)}
    return out, groups


def split_dataset(
    name: str,
    convs: Sequence[Conversation],
    items: Sequence[Item],
    dimensions: Sequence[str],
    *,
    sizes: Sizes,
    seed: int,
) -> dict[str, dict[str, list[Example]]]:
    """One dataset on its own (``{dimension: {part: [Example]}}``): :func:`split_datasets` of one."""
    return split_datasets({name: (convs, items)}, dimensions, sizes=sizes, seed=seed)[0][name]


def shares(total: int, names: Sequence[str]) -> dict[str, int]:
    """``total`` split as evenly as possible over ``names``; the first ones take the remainder."""
    base, extra = divmod(total, len(names))
    return {n: base + (1 if i < extra else 0) for i, n in enumerate(names)}


def mixed_split(
    splits: dict[str, dict[str, dict[str, list[Example]]]],
    dimensions: Sequence[str],
    *,
    sizes: Sizes,
    seed: int,
    max_words: int,
) -> dict[str, dict[str, list[Example]]]:
    """The Mixed set from the per-dataset splits (``{dataset: {dimension: {part: [...]}}}``)."""
    names = list(splits)
    out: dict[str, dict[str, list[Example]]] = {}
    for dim in dimensions:
        out[dim] = {}
        for part in PARTS:
            picked: list[Example] = []
            for name, n in shares(sizes.of(part), names).items():
                pool = [e for e in splits[name][dim][part] if len(e.assessment.split()) <= max_words]
                if len(pool) < n:
                    raise ConfigError(
                        "split.mixed_max_words",
                        f"Mixed {part}, dimension {dim}: dataset {name!r} has {len(pool)} {part} "
                        f"examples with at most {max_words} words of explanation, {n} needed",
                    )
                pool.sort(key=lambda e: (order_key(seed, e.id), e.id))
                picked.extend(pool[:n])
            out[dim][part] = picked
    return out


def group_leaks(splits: Mapping[str, Mapping[str, Mapping[str, Sequence[Example]]]]) -> dict[str, dict[str, int]]:
    """For each check (``test_in_train`` …) and ordered pair of sets ``"A -> B"``: how many of A's groups in the
    held-out part (over all dimensions) are in B's other part. A == B is included."""
    groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, dims in splits.items():
        for parts in dims.values():
            for part, exs in parts.items():
                groups[(name, part)].update(e.group for e in exs)
    out: dict[str, dict[str, int]] = {}
    for held, other in LEAK_CHECKS:
        out[f"{held}_in_{other}"] = {
            f"{a} -> {b}": len(groups[(a, held)] & groups[(b, other)]) for a in sorted(splits) for b in sorted(splits)
        }
    return out


def split_summary(splits: dict[str, dict[str, dict[str, list[Example]]]]) -> dict[str, Any]:
    """Sizes and label counts per (set, dimension, part), and the cross-set group overlaps, for metrics/split.json.

    Any overlap raises AssertionError: it cannot happen by construction, and is checked so that a regression
    cannot pass silently.
    """
    cells: dict[str, Any] = {}
    for name, dims in sorted(splits.items()):
        for dim, parts in sorted(dims.items()):
            cell = {}
            for part in PARTS:
                exs = parts[part]
                labels = Counter(e.label for e in exs)
                cell[part] = {
                    "n": len(exs),
                    "groups": len({e.group for e in exs}),
                    "labels": {str(k): labels.get(k, 0) for k in range(1, 6)},
                    "score_mean": round(sum(e.score for e in exs) / len(exs), 6) if exs else None,
                }
            cells[f"{name}/{dim}"] = cell
    leaks = group_leaks(splits)
    total = sum(n for pairs in leaks.values() for n in pairs.values())
    if total:
        bad = [f"{check} {pair}: {n}" for check, pairs in leaks.items() for pair, n in pairs.items() if n]
        raise AssertionError(f"groups straddle the split: {'; '.join(bad[:5])}")
    return {"sets": cells, "group_overlap": leaks, "group_overlap_total": total}


def write_splits(splits: dict[str, dict[str, dict[str, list[Example]]]], root: Path) -> None:

    for name, dims in splits.items():
        for dim, parts in dims.items():
            for part, exs in parts.items():
                write_jsonl(root / name / dim / f"{part}.jsonl", exs)
