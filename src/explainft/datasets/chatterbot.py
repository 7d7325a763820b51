"""The embedded demo corpus: chatterbot-corpus English dialogues, and a perturbed twin.

Source: the ``chatterbot-corpus`` package on PyPI (BSD-3-Clause, Gunther Cox),
``chatterbot_corpus/data/english/*.yml``: 21 category files, 2,026 real
English dialogues (1,946 of two lines, the longest 88). Each file is YAML
``{categories: [..], conversations: [[line, line, ...], ...]}``.

``chatterbot`` (the clean dataset)
    One Conversation per dialogue. Lines alternate between two speakers; the
    **last** line is the response to rate, so roles are assigned backwards from
    it: the last line is ``assistant``, the one before ``user``, and so on
    (a documented choice: odd-length dialogues would otherwise end on a user
    turn). A one-line dialogue has nothing to respond to and is dropped
    (``dropped.too_short``). Lines are stripped; an empty line is a record
    error (``empty_turn``/``empty_response``). Line text is the YAML scalar as
    written (``Yes`` stays ``"Yes"``, never ``True``). A line that is not a
    scalar (a list or mapping) is a record error naming
    ``conversations[i][j]`` and the file's line.

``chatterbot_perturbed`` (the twin)
    The same dialogues with seeded perturbations of the response, so that
    ratings spread across the scale the way HH-RLHF chosen vs rejected do. For
    each dialogue a generator seeded by ``(perturb_seed, id)`` (independent of
    file order) decides:

    * with probability ``keep_share`` the response is left as it is;
    * otherwise ``n`` perturbations (1, or 2 with probability ``double_share``)
      of distinct kinds from ``kinds`` are applied in a fixed order
      (content first, then length, then style):

      - ``swap``: the response is replaced by another dialogue's response,
        from a different category when one exists (off-topic);
      - ``generic``: the response is replaced by a vague non-answer
        (not comprehensive, weakly on-topic);
      - ``truncate``: the response is cut to ``truncate_keep`` of its words
        (at least one) and loses its final punctuation (incomplete);
      - ``repeat``: a phrase of the response is repeated 2 or 3 times
        (unnatural);
      - ``scripted``: the response is wrapped in robotic boilerplate with a
        needless follow-up question (unnatural).

    Every perturbation is recorded in ``meta["perturbations"]`` (kind and its
    parameters: the donor id for ``swap``, the kept word count for
    ``truncate`` …) and the original response in ``meta["original_response"]``;
    an unperturbed dialogue has ``meta["perturbations"] == []``. A kind that
    cannot apply (``truncate`` or ``repeat`` on a one-word response) is
    replaced by the next applicable kind, counted in
    ``policy.perturbation_substituted``.

Group (both datasets): :func:`~explainft.datasets.base.prompt_group` of the user's turns, so a dialogue and
its perturbed twin (which differ only in the response) share one, and so do dialogues of different files that
ask the same thing; the split keeps a group on one side across both datasets. A ``swap`` donor's response
appears in another group's conversation out of its context; the donor is named in meta, not grouped.

Duplicates: the corpus repeats dialogues word for word (``tech_support.yml``
holds 1,050 dialogues, about 20 of them distinct, each written up to 121
times; 898 of the 2,025 English dialogues are distinct). Copies are not
independent examples: they would fill the training set with a few dialogues
and put the same dialogue on both sides of every split. With ``duplicates:
drop`` (default) a dialogue whose lines equal an earlier one's (files in name
order, dialogues in file order) is dropped, counted as
``dropped.duplicate_dialogue``, before the perturbed twin is made; ``keep``
keeps them (their shared group still keeps them on one side of the split).

Options (both datasets): ``min_lines`` (2), ``duplicates`` (``drop``). Perturbation options
(``perturb_seed``, ``keep_share``, ``double_share``, ``kinds``,
``truncate_keep``) may only be set for ``chatterbot_perturbed``; null means
the default below.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..errors import ConfigError, RecordError
from ..records import Conversation, Turn
from .base import LoadContext, find_files, prompt_group

RAW_FILES = ["**/*.yml", "**/*.yaml"]

PERTURB_KINDS = ("swap", "generic", "truncate", "repeat", "scripted")
PERTURB_DEFAULTS: dict[str, Any] = {
    "perturb_seed": 1729,
    "keep_share": 0.15,
    "double_share": 0.3,
    "kinds": list(PERTURB_KINDS),
    "truncate_keep": 0.4,
}

OPTIONS = {
    "min_lines": (int, 2),
    "duplicates": (["drop", "keep"], "drop"),
    "perturb_seed": (int, None),
    "keep_share": ((int, float), None),
    "double_share": ((int, float), None),
    "kinds": (list, None),
    "truncate_keep": ((int, float), None),
}

# Written here for the demo: a vague reply and robotic wrappers of the kind the
# paper's naturalness rubric penalises (scripted wording, needless follow-ups).
GENERIC_REPLIES = (
    "That is an interesting question. There are many factors to consider.",
    "It depends on a number of things, really.",
    "I understand. Let me know if there is anything else.",
    "There are several ways to look at it.",
    "Thank you for your message.",
)
SCRIPTED_OPENERS = (
    "As an automated assistant, I can confirm the following:",
    "Thank you for your inquiry. Please note the following information:",
    "I have processed your request. The response is as follows:",
)
SCRIPTED_CLOSERS = (
    "Is there anything else I can help you with today?",
    "Please let me know if you have any further questions or concerns.",
    "Did this response fully resolve your request?",
)


def load(raw_dir: Path, options: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    perturbed = bool(options.get("perturbed"))
    params = _perturb_params(ctx.dataset, options, perturbed)
    if options["min_lines"] < 2:
        raise ConfigError(f"sources.{ctx.dataset}.options.min_lines", "must be at least 2 (a request and a response)")
    base = list(_read_all(raw_dir, options, ctx))
    if options["duplicates"] == "drop":
        base = _drop_duplicates(base, ctx)
    if not perturbed:
        yield from base
        return
    yield from _perturb_all(base, params, ctx)


def _drop_duplicates(convs: list[Conversation], ctx: LoadContext) -> list[Conversation]:
    """Keep the first of dialogues whose lines are all the same (files in name order, dialogues in file order)."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for c in convs:
        key = tuple(t.text for t in c.turns)
        if key in seen:
            ctx.drop("duplicate_dialogue")
            continue
        seen.add(key)
        out.append(c)
    return out


# --------------------------------------------------------------------------- reading


def _read_all(raw_dir: Path, options: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    for path in find_files(raw_dir, RAW_FILES, ctx.dataset):
        ctx.note_file(path, raw_dir)
        rel = str(path.relative_to(raw_dir))
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            ctx.source_records += 1
            ctx.error(RecordError("bad_encoding", f"bytes not valid utf-8 at byte {e.start}", file=path))
            continue
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            ctx.source_records += 1
            ctx.error(
                RecordError(
                    "bad_yaml",
                    f"invalid YAML: {getattr(e, 'problem', e)}",
                    file=path,
                    line=mark.line + 1 if mark else None,
                )
            )
            continue
        convs_node, category = _top_level(root, path, ctx)
        if convs_node is None:
            continue
        stem = path.stem
        for i, node in enumerate(convs_node.value):
            line = node.start_mark.line + 1
            with ctx.record(path, line) as rec:
                lines = _lines(node, i)
                if len(lines) < options["min_lines"]:
                    ctx.drop("too_short")
                else:
                    n = len(lines)
                    turns = [
                        Turn(role="assistant" if (n - 1 - j) % 2 == 0 else "user", text=t) for j, t in enumerate(lines)
                    ]
                    rec.add(
                        Conversation(
                            id=f"{ctx.dataset}/{stem}/{i:04d}",
                            dataset=ctx.dataset,
                            turns=tuple(turns),
                            group=prompt_group(turns),
                            meta={
                                "category": category,
                                "index": i,
                                "n_lines": n,
                                "source": {"file": rel, "line": line},
                            },
                        )
                    )
            yield from rec.take()


def _top_level(root: Any, path: Path, ctx: LoadContext) -> tuple[Any, str | None]:
    def fail(reason: str, msg: str) -> tuple[None, None]:
        ctx.source_records += 1
        ctx.error(
            RecordError(
                reason,
                msg,
                field="conversations",
                file=path,
                line=(root.start_mark.line + 1) if root is not None else None,
            )
        )
        return None, None

    if root is None:
        return fail("missing_field", "the file is empty")
    if not isinstance(root, yaml.MappingNode):
        return fail("wrong_type", "expected a mapping with a 'conversations' list")
    top = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    convs = top.get("conversations")
    if convs is None:
        return fail("missing_field", "required field is missing")
    if not isinstance(convs, yaml.SequenceNode):
        return fail("wrong_type", "expected a list of dialogues")
    category = None
    cats = top.get("categories")
    if isinstance(cats, yaml.SequenceNode) and cats.value and isinstance(cats.value[0], yaml.ScalarNode):
        category = cats.value[0].value
    return convs, category or path.stem


def _lines(node: Any, i: int) -> list[str]:
    if not isinstance(node, yaml.SequenceNode):
        raise RecordError("wrong_type", "a dialogue must be a list of lines", field=f"conversations[{i}]")
    out = []
    for j, item in enumerate(node.value):
        if not isinstance(item, yaml.ScalarNode):
            raise RecordError(
                "wrong_type", "a line must be text, not a list or mapping", field=f"conversations[{i}][{j}]"
            )
        out.append(item.value.strip())
    return out


# --------------------------------------------------------------------------- perturbation


def _perturb_params(dataset: str, options: dict[str, Any], perturbed: bool) -> dict[str, Any]:
    set_keys = [k for k in PERTURB_DEFAULTS if options.get(k) is not None]
    if not perturbed:
        if set_keys:
            raise ConfigError(
                f"sources.{dataset}.options.{set_keys[0]}", "perturbation options apply only to chatterbot_perturbed"
            )
        return {}
    p = {k: (options[k] if options.get(k) is not None else v) for k, v in PERTURB_DEFAULTS.items()}
    for key in ("keep_share", "double_share"):
        if not 0.0 <= p[key] <= 1.0:
            raise ConfigError(f"sources.{dataset}.options.{key}", f"must be in [0, 1], got {p[key]!r}")
    if not 0.0 < p["truncate_keep"] < 1.0:
        raise ConfigError(f"sources.{dataset}.options.truncate_keep", f"must be in (0, 1), got {p['truncate_keep']!r}")
    kinds = p["kinds"]
    bad = [k for k in kinds if k not in PERTURB_KINDS]
    if bad or not kinds or len(set(kinds)) != len(kinds):
        raise ConfigError(
            f"sources.{dataset}.options.kinds",
            f"must be a non-empty list of distinct kinds from {', '.join(PERTURB_KINDS)}; got {kinds!r}",
        )
    # apply in a fixed order whatever order the user listed them in
    p["kinds"] = [k for k in PERTURB_KINDS if k in kinds]
    return p


def _perturb_all(base: list[Conversation], p: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    pool = sorted(base, key=lambda c: c.id)
    for conv in base:
        rng = random.Random(f"{p['perturb_seed']}:{conv.id}")
        applied: list[dict[str, Any]] = []
        text = conv.response.text
        if rng.random() >= p["keep_share"]:
            n = 2 if rng.random() < p["double_share"] and len(p["kinds"]) > 1 else 1
            chosen = rng.sample(p["kinds"], n)
            # content replacements are exclusive: swap and generic do not stack
            if "swap" in chosen and "generic" in chosen:
                chosen.remove("generic")
            for kind in [k for k in PERTURB_KINDS if k in chosen]:
                text, info = _apply(kind, text, conv, pool, rng, p, ctx)
                applied.append(info)
        meta = dict(conv.meta)
        meta["perturbations"] = applied
        meta["original_response"] = conv.response.text
        turns = conv.turns[:-1] + (Turn(role="assistant", text=text),)
        for info in applied:
            ctx.count(f"perturbed_{info['kind']}")
        yield Conversation(
            id=conv.id, dataset=conv.dataset, turns=turns, context=conv.context, meta=meta, group=conv.group
        )


_FALLBACK = {"truncate": "scripted", "repeat": "scripted"}


def _apply(
    kind: str,
    text: str,
    conv: Conversation,
    pool: list[Conversation],
    rng: random.Random,
    p: dict[str, Any],
    ctx: LoadContext,
) -> tuple[str, dict[str, Any]]:
    words = text.split()
    if kind in ("truncate", "repeat") and len(words) < 2:
        ctx.count("perturbation_substituted")
        kind = _FALLBACK[kind]
    if kind == "swap":
        category = conv.meta.get("category")
        others = [c for c in pool if c.id != conv.id and c.response.text != text and c.meta.get("category") != category]
        if not others:
            others = [c for c in pool if c.id != conv.id and c.response.text != text]
        if not others:
            raise RecordError("no_donor", "no other dialogue to swap a response from", record=conv.id)
        donor = rng.choice(others)
        # name the donor by its id in the clean ``chatterbot`` dataset
        return donor.response.text, {"kind": "swap", "donor": "chatterbot/" + donor.id.split("/", 1)[1]}
    if kind == "generic":
        reply = rng.choice(GENERIC_REPLIES)
        return reply, {"kind": "generic"}
    if kind == "truncate":
        keep = max(1, int(len(words) * p["truncate_keep"]))
        cut = re.sub(r"[.!?;:,]+$", "", " ".join(words[:keep]))
        return cut or words[0], {"kind": "truncate", "kept_words": keep, "original_words": len(words)}
    if kind == "repeat":
        length = min(len(words), rng.randint(2, 5))
        start = rng.randint(0, len(words) - length)
        phrase = " ".join(words[start : start + length])
        times = rng.choice((2, 3))
        out = " ".join(words[: start + length] + ([phrase] * (times - 1)) + words[start + length :])
        return out, {"kind": "repeat", "phrase": phrase, "times": times}
    if kind == "scripted":
        opener, closer = rng.choice(SCRIPTED_OPENERS), rng.choice(SCRIPTED_CLOSERS)
        return f"{opener} {text} {closer}", {"kind": "scripted"}
    raise ConfigError("kinds", f"unknown perturbation kind {kind!r}")  # unreachable: validated above
