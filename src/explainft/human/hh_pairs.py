"""Anthropic HH-RLHF (``Anthropic/hh-rlhf``) chosen/rejected lines -> a preference set.

Raw files (option ``files``, default ``["*/train.jsonl.gz", "*/train.jsonl", "train.jsonl.gz",
"train.jsonl"]``): gzipped or plain JSON lines ``{"chosen": transcript, "rejected": transcript}`` laid out as on
the Hub (``harmless-base/train.jsonl.gz`` ...; the ``red-team-attempts`` file has another schema and is not
matched by the default). Each line is one pair: ``a`` = chosen, ``b`` = rejected, winner ``a``.

Parsing: each transcript is split by :func:`explainft.datasets.hh_rlhf.split_transcript`, the HH-RLHF dataset
loader's parser (only on ``\\n\\n(Human|Assistant): ?``; ``Human`` -> user, ``Assistant`` -> assistant; texts kept
as they are). The two transcripts must be identical up to their last ``\\n\\nAssistant:`` marker
(:func:`~explainft.datasets.hh_rlhf.shared_prefix`): that shared prefix is the prompt and the final Assistant
turns are the two responses. Two consecutive turns of one role are joined with a blank line
(``policy.merged_consecutive_turns``, counted per side).

Ids: pair ``<name>/<subset>/<split>/<line>`` (subset = the file's folder, ``default`` directly in the raw
folder; split = the file name without ``.jsonl.gz``/``.jsonl``; line 1-based), sides ``.../a`` and ``.../b``.
Group: ``<name>/p<sha256 of the prefix turns (role and text)>``, shared by both sides and by every line with
the same prompt. Meta of each side: ``subset``, ``split``, ``side`` (``chosen``/``rejected``).

Errors (RecordError naming file, line and field; raised or counted under ``skipped.<reason>``): bytes not
UTF-8, bad JSON, not an object, ``chosen``/``rejected`` missing or not a string, a transcript that is empty
(``empty_conversation``), has text before the first marker (``text_before_first_marker``), ends with a Human
turn (``last_turn_not_response``), has an empty turn before the final one (``empty_turn``) or no Human turn
(``no_request``), and two transcripts that differ before their final Assistant turn (``prefix_mismatch``).

Policies (counted): a final Assistant turn that is empty or blank on either side leaves nothing to compare: the
pair is dropped (``dropped.empty_response``); chosen and rejected final responses that are identical (after
stripping surrounding whitespace) carry no preference: dropped (``dropped.identical_pair``); a key other than
``chosen``/``rejected`` is not read (``policy.unknown_field``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..datasets.base import LoadContext, merge_consecutive, require
from ..datasets.hh_rlhf import checked_turns, shared_prefix, subset_split
from ..errors import RecordError
from ..records import Conversation
from .base import RecordCounts, check_not_empty, count_unknown_fields, group_of, human_files, summary
from .records import HumanSet, PreferencePair, Scale

KIND = "preferences"
OPTIONS: dict[str, tuple[Any, Any]] = {
    "files": (list, ["*/train.jsonl.gz", "*/train.jsonl", "train.jsonl.gz", "train.jsonl"])
}
SIDES = {"a": "chosen", "b": "rejected"}
QUALITIES = {"preference": Scale(0, 1)}


def load(raw_dir: Path, name: str, options: dict[str, Any], ctx: LoadContext) -> HumanSet:
    """Read every matching file of ``raw_dir`` into the preference set ``name``."""
    pairs: list[PreferencePair] = []
    values_skipped: Counter = Counter()
    for path in human_files(raw_dir, options["files"], name):
        ctx.note_file(path, raw_dir)
        subset, split = subset_split(path, raw_dir)
        before = ctx.source_records
        for rec, obj in ctx.jsonl(path):
            counts = RecordCounts(ctx)
            with rec:
                pair = parse_line(obj, f"{name}/{subset}/{split}/{rec.line}", name, subset, split, counts)
                counts.commit(values_skipped)
                if pair is not None:
                    pairs.append(pair)
        check_not_empty(ctx, path, before)
    return HumanSet(
        name=name,
        format="hh_rlhf_pairs",
        kind=KIND,
        pairs=pairs,
        qualities=dict(QUALITIES),
        load=summary(ctx, values_skipped, len(pairs)),
    )


def parse_line(
    obj: Any, pair_id: str, name: str, subset: str, split: str, counts: RecordCounts
) -> PreferencePair | None:
    """One ``{"chosen", "rejected"}`` line -> PreferencePair ``pair_id``, or None when a policy drops it."""
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"a line must be a JSON object, got {type(obj).__name__}")
    texts = {s: require(obj, key, str) for s, key in SIDES.items()}
    turns = {s: checked_turns(texts[s], SIDES[s]) for s in SIDES}
    if not shared_prefix(texts["a"], texts["b"]):
        raise RecordError(
            "prefix_mismatch", "chosen and rejected differ before their final Assistant turn", field="rejected"
        )
    count_unknown_fields(obj, SIDES.values(), counts)
    finals = {s: t[-1].text.strip() for s, t in turns.items()}
    if not all(finals.values()):
        counts.scratch.drop("empty_response")
        return None
    if finals["a"] == finals["b"]:
        counts.scratch.drop("identical_pair")
        return None
    prefix = turns["a"][:-1]
    group = group_of(name, [f"{t.role}\x1e{t.text}" for t in prefix])
    sides = {
        s: Conversation(
            id=f"{pair_id}/{s}",
            dataset=name,
            turns=tuple(merge_consecutive(turns[s], counts.scratch)),
            group=group,
            meta={"subset": subset, "split": split, "side": SIDES[s]},
        )
        for s in SIDES
    }
    return PreferencePair(id=pair_id, group=group, a=sides["a"], b=sides["b"], winner="a")
