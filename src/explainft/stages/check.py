"""The profile check ``explainft check`` and ``make repro`` run before any stage: every section of a profile,
deeply, so that a bad key fails naming it before work starts.

:mod:`explainft.config` checks each section's shape; here the library checks what only it knows: that each
dataset is registered, its fetch spec is valid for its kind and its loader accepts its options; that each
teacher's backend can be built with its options; and that each variant name parses.

Two more checks need the profile as a whole:

**Items against the split.** Each dataset must give the split ``split.train + split.validation + split.test``
items (Mixed takes its share from those same items). :data:`PUBLISHED` holds the published size of each source
whose item count a loader option determines (CoQA ``items: final`` is one item per story, ``prefixes`` one per
question-answer turn); the check prints a table ``dataset | expected items | per_dataset | split needs`` and fails
naming the option when a source cannot give what the split needs, and naming ``data.per_dataset`` when that is
below it. ``merge`` drops an item with fewer than ``merge.min_valid`` valid ratings, and ``annotate`` lets up to
``annotate.max_failed_share`` (0.02 in the paper profile) of the requests of a teacher, prompt and dimension
fail, so the check warns when ``data.per_dataset`` (or the source, when smaller) leaves less than
:data:`HEADROOM_SHARE` (2%) of what the split needs, and at least one item, as headroom.

**Replication.** A profile with ``replication: true`` claims to replicate the paper, so everything it takes from
the Hugging Face Hub is pinned to a 40-hex commit: every ``from: hub`` fetch's ``revision``, a Hub tokenizer's
``stats.tokenizer_revision`` and a Hub student's ``train.student_revision``.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable

from .. import datasets as registry
from ..annotate.backends import make_backend
from ..config import (
    DataConfig,
    analysis_config,
    annotate_config,
    check_sections,
    data_config,
    evaluate_config,
    finetune_config,
    golden_path,
    human_config,
    is_replication,
    merge_config,
    split_config,
    stats_config,
    student_build_config,
    variants_config,
)
from ..datasets.fetch import validate_fetch
from ..datasets.prepare import resolve_options
from ..errors import ConfigError
from ..human import check_human_set
from ..students import STUDENT_DIR
from ..variants import validate_variants

COMMIT = re.compile(r"^[0-9a-f]{40}$")  # a Hub commit hash: what a replication pins every Hub download to
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")  # name or owner/name
BUILT_HERE = ("tiny", "smollm2")  # students the student stage builds (no Hub download)
HEADROOM_SHARE = 0.02  # warn below this share of the split's needs (annotate.max_failed_share in the paper profile)


# --------------------------------------------------------------------------- published sizes


@dataclass(frozen=True)
class Published:
    """What a source gives under a profile's options: ``items`` (at most, when ``bound``: a filter option can
    only lower it; about, when ``approx``), the option ``key`` that determines it, and where the numbers come
    from."""

    items: int
    key: str
    source: str
    bound: bool = False
    approx: bool = False

    def shown(self) -> str:
        return f"{'<= ' if self.bound else ''}{'~' if self.approx else ''}{self.items:,}"


# lmsys/chatbot_arena_conversations, dataset card and Hub viewer: one split, train, of 33,000 battles
ARENA_BATTLES = 33_000
# Anthropic/hh-rlhf, rows per file (Hub viewer, data_dir per subset): train 160,800 and test 8,552 in all
HH_RLHF_ROWS = {
    "harmless-base/train.jsonl.gz": 42_537,
    "harmless-base/test.jsonl.gz": 2_312,
    "helpful-base/train.jsonl.gz": 43_835,
    "helpful-base/test.jsonl.gz": 2_354,
    "helpful-online/train.jsonl.gz": 22_007,
    "helpful-online/test.jsonl.gz": 1_137,
    "helpful-rejection-sampled/train.jsonl.gz": 52_421,
    "helpful-rejection-sampled/test.jsonl.gz": 2_749,
}
# CoQA (Reddy, Chen, Manning, TACL 2019, Table 2), (stories, question-answer turns) per split; the Hub's
# stanfordnlp/coqa has the same train (7,199 rows) and validation (500 rows, the JSON's dev); the test set is hidden
COQA_SPLITS = {"train": (7_199, 108_647), "validation": (500, 7_983)}
COQA_SPLIT_NAMES = {"train": "train", "validation": "validation", "dev": "validation"}
# AmazonQA (Gupta et al. 2019, arXiv 1908.04364): about 923k questions and 3.6M answers over train, val and test
AMAZONQA_QUESTIONS = 923_000
AMAZONQA_ANSWERS = 3_600_000
# Cornell Movie-Dialogs Corpus README (movie_conversations.txt): 83,097 conversations, each of 2 lines or more
CORNELL_CONVERSATIONS = 83_097


def _arena(name: str, options: dict[str, Any], fetch: dict[str, Any]) -> Published:
    sides = 2 if options["sides"] == "both" else 1
    return Published(
        items=ARENA_BATTLES * sides,
        key=f"sources.{name}.options.sides",
        source=f"lmsys/chatbot_arena_conversations: {ARENA_BATTLES:,} battles x {sides} side(s) "
        f"(sides: {options['sides']}); language, drop_flagged and multi_turn can only lower it",
        bound=True,
    )


def _hh_rlhf(name: str, options: dict[str, Any], fetch: dict[str, Any]) -> Published | None:
    patterns = fetch.get("files") if fetch.get("from") == "hub" else None
    files = [f for f in HH_RLHF_ROWS if patterns is None or any(fnmatchcase(f, p) for p in patterns)]
    if not files:
        return None
    which = (
        ", ".join(f.split(".")[0] for f in files)
        if patterns is not None
        else "every file of the four subsets (not fetched from the Hub, so the files are not known here)"
    )
    return Published(
        items=sum(HH_RLHF_ROWS[f] for f in files),
        key=f"sources.{name}.fetch.files",
        source=f"Anthropic/hh-rlhf, {which}; empty final responses (dropped) only lower it",
        bound=True,
    )


def _coqa(name: str, options: dict[str, Any], fetch: dict[str, Any]) -> Published | None:
    listed = options["splits"] if options["splits"] is not None else list(COQA_SPLITS)
    splits = {COQA_SPLIT_NAMES.get(s) for s in listed}
    if None in splits:  # a split CoQA does not publish: the loader says so when it runs
        return None
    turns = options["items"] == "prefixes"
    per = {s: COQA_SPLITS[s][1 if turns else 0] for s in sorted(splits)}
    unit = "question-answer turns" if turns else "stories"
    return Published(
        items=sum(per.values()),
        key=f"sources.{name}.options.items",
        source=f"CoQA (Reddy et al. 2019): items: {options['items']} is one item per "
        f"{'turn' if turns else 'story'}; {' + '.join(f'{s} {n:,}' for s, n in per.items())} {unit}",
    )


def _amazonqa(name: str, options: dict[str, Any], fetch: dict[str, Any]) -> Published:
    each = options["answer"] == "each"
    return Published(
        items=AMAZONQA_ANSWERS if each else AMAZONQA_QUESTIONS,
        key=f"sources.{name}.options.answer",
        source=f"AmazonQA (Gupta et al. 2019): about {'3.6M answers' if each else '923k questions'} over "
        f"train, val and test (answer: {options['answer']}); splits: {', '.join(options['splits'])} only lower it",
        bound=True,
        approx=True,
    )


def _cornell(name: str, options: dict[str, Any], fetch: dict[str, Any]) -> Published:
    return Published(
        items=CORNELL_CONVERSATIONS,
        key=f"sources.{name}.options",
        source=f"Cornell Movie-Dialogs Corpus README: {CORNELL_CONVERSATIONS:,} conversations; empty lines "
        f"(dropped) and min_lines above 2 only lower it",
        bound=True,
    )


# dataset loader module -> what its source publishes under the options (None: not known here)
PUBLISHED: dict[str, Callable[[str, dict[str, Any], dict[str, Any]], Published | None]] = {
    "arena": _arena,
    "hh_rlhf": _hh_rlhf,
    "coqa": _coqa,
    "amazonqa": _amazonqa,
    "cornell": _cornell,
}


def published(name: str, options: dict[str, Any], fetch: dict[str, Any]) -> Published | None:
    """What dataset ``name``'s source publishes under its resolved ``options`` and validated ``fetch``."""
    fn = PUBLISHED.get(registry.get(name).module)
    return fn(name, options, fetch) if fn else None


def check_items(data: DataConfig, needs: int, needs_from: str) -> None:
    """Print the items table; fail naming the option (a source too small) or ``data.per_dataset`` (below what the
    split needs); warn (on stderr) when the headroom is under :data:`HEADROOM_SHARE`."""
    rows = []
    for name in data.datasets:
        src = data.sources[name]
        rows.append((name, published(name, resolve_options(name, src["options"]), validate_fetch(name, src["fetch"]))))
    per = "all" if data.per_dataset is None else f"{data.per_dataset:,}"
    table = [("dataset", "expected items", "per_dataset", "split needs")]
    table += [(name, pub.shown() if pub else "?", per, f"{needs:,}") for name, pub in rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    print(f"items per dataset (split needs {needs_from}):")
    for r in table:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    for name, pub in rows:
        if pub:
            print(f"  {name}: {pub.source}")

    for name, pub in rows:
        if pub and pub.items < needs:
            raise ConfigError(
                pub.key,
                f"dataset {name!r} gives {'at most ' if pub.bound else ''}{pub.items:,} items under these options "
                f"({pub.source}), fewer than the split needs ({needs_from}); change the option or lower the "
                "split sizes",
            )
    if data.per_dataset is not None and data.per_dataset < needs:
        raise ConfigError(
            "data.per_dataset",
            f"{data.per_dataset:,} conversations per dataset, fewer than the split needs ({needs_from}); "
            f"raise it to at least {needs + headroom_floor(needs):,}",
        )
    floor = headroom_floor(needs)
    thin = []
    for name, pub in rows:
        have = [n for n in (data.per_dataset, pub.items if pub else None) if n is not None]
        if have and min(have) - needs < floor:
            thin.append(f"{name} ({min(have) - needs:,})")
    if thin:
        print(
            f"WARNING: little headroom over what the split needs ({needs_from}) for {', '.join(thin)}: merge "
            f"drops items with fewer than merge.min_valid valid ratings, so the split may fall short. Keep at "
            f"least {HEADROOM_SHARE:.0%} of it ({floor:,} items): data.per_dataset >= {needs + floor:,}, or "
            "lower the split sizes where the source itself is the limit.",
            file=sys.stderr,
        )


def headroom_floor(needs: int) -> int:
    """The least headroom over ``needs`` items that passes without a warning: 2%, and at least one item."""
    return max(1, math.ceil(needs * HEADROOM_SHARE))


# --------------------------------------------------------------------------- replication


def is_hub_id(spec: str) -> bool:
    """Whether a tokenizer or student spec names a Hub repository: not one the student stage builds, not an
    existing folder or the student stage's own output, and of the form ``name`` or ``owner/name``."""
    if spec in BUILT_HERE or spec.rstrip("/") == STUDENT_DIR or spec.startswith((".", "/", "~")):
        return False
    return HUB_ID.match(spec) is not None and not Path(spec).is_dir()


def check_pinned(params: dict[str, Any], data: DataConfig) -> None:
    """In a replication profile, every Hub download is pinned to a commit hash (see the module docstring)."""
    why = "replication: true needs a 40-hex commit hash (the Hub's 'sha'; a branch or tag moves)"
    for name in data.datasets:
        fetch = validate_fetch(name, data.sources[name]["fetch"])
        if fetch["from"] == "hub" and not COMMIT.match(fetch["revision"]):
            raise ConfigError(
                f"sources.{name}.fetch.revision",
                f"{why}; got {fetch['revision']!r} for {fetch['repo_id']} (the download stage's SOURCE.json "
                "records the commit a branch resolved to)",
            )
    for name, hs in human_config(params).sets.items():
        fetch = validate_fetch(name, hs.fetch, base=hs.key("fetch"))
        if fetch["from"] == "hub" and not COMMIT.match(fetch["revision"]):
            raise ConfigError(hs.key("fetch.revision"), f"{why}; got {fetch['revision']!r} for {fetch['repo_id']}")
        if fetch["from"] == "url" and set(fetch["urls"]) - set(fetch["sha256"] or {}):
            named = {u.rsplit("/", 1)[-1] for u in fetch["urls"]} - set(fetch["sha256"] or {})
            if named:
                raise ConfigError(
                    hs.key("fetch.sha256"),
                    f"replication: true needs a sha256 for every download; none for {sorted(named)}",
                )
    if "stats" in params:
        stats = stats_config(params)
        if is_hub_id(stats.tokenizer) and not COMMIT.match(stats.tokenizer_revision or ""):
            raise ConfigError(
                "stats.tokenizer_revision",
                f"{why} for the Hub tokenizer stats.tokenizer = {stats.tokenizer!r}; got {stats.tokenizer_revision!r}",
            )
    if "train" in params:
        fc = finetune_config(params)
        if is_hub_id(fc.student) and not COMMIT.match(fc.student_revision or ""):
            raise ConfigError(
                "train.student_revision",
                f"{why} for the Hub student train.student = {fc.student!r}; got {fc.student_revision!r}",
            )


# --------------------------------------------------------------------------- the profile


def check_profile(params: dict[str, Any]) -> dict[str, Any]:
    """Check every section of a profile, deeply (loaders' options, fetch specs, teachers' backends, variant
    names, items against the split, pins of a replication); prints the items table; returns a short summary."""
    check_sections(params)
    data = data_config(params, check_name=registry.get)  # unknown name: an error listing the known ones
    for name in data.datasets:
        validate_fetch(name, data.sources[name]["fetch"])
        resolve_options(name, data.sources[name]["options"])
    summary: dict[str, Any] = {"datasets": list(data.datasets)}
    acfg = None
    if "annotate" in params:
        acfg = annotate_config(params)
        for t in acfg.teachers:
            make_backend(t)
        summary["teachers"] = [t.name for t in acfg.teachers]
    if "merge" in params:
        summary["merge"] = merge_config(params, acfg).score
    if "golden" in params:
        summary["golden"] = golden_path(params)
    if "human" in params:
        hc = human_config(params, acfg.dimensions if acfg else None)
        for name, hs in hc.sets.items():
            check_human_set(name, hs.format, hs.options, hs.map)
            validate_fetch(name, hs.fetch, base=hs.key("fetch"))
        summary["human"] = list(hc.sets)
    if "split" in params:
        sc = split_config(params)
        summary["split"] = f"{sc.train}/{sc.validation}/{sc.test}"
        needs = sc.train + sc.validation + sc.test
        check_items(
            data,
            needs,
            f"{needs:,} = split.train {sc.train:,} + split.validation {sc.validation:,} + split.test {sc.test:,}",
        )
    if "variants" in params:
        names = variants_config(params)[0]
        validate_variants(list(names))
        summary["variants"] = list(names)
    if "stats" in params:
        stats_config(params)
    if "student" in params:
        student_build_config(params)
    if "train" in params:
        if "ablation" not in params:  # dvc.yaml's ablation stages interpolate ${ablation.*}
            raise ConfigError(
                "ablation",
                "section missing; dvc.yaml's ablation stages read it. For no ablation "
                "grid: ablation: {sets: [], dimensions: [], variants: []}",
            )
        fc = finetune_config(params)
        summary["student"] = fc.student
        summary["finetunes"] = len(fc.cells())
    if "evaluate" in params:
        evaluate_config(params)
    if "analysis" in params:
        analysis_config(params)
    if is_replication(params):
        check_pinned(params, data)
        summary["replication"] = "pinned"
    return summary
