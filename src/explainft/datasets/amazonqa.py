"""AmazonQA (Gupta et al. 2019, arXiv 1908.04364): ``*-qar.jsonl`` files, review snippets as context.

Source: ``train-qar.jsonl`` / ``val-qar.jsonl`` (S3) and ``test-qar.jsonl``
(Google Drive), one JSON object per question, written by the authors'
``src/prepro/create_data.py`` with ``qid`` added by ``convert0.py``. A
``.jsonl.gz`` copy is read the same way. The files are several GB, so they
are streamed line by line. ``*-qar_products.jsonl`` / ``*-qar_squad.jsonl``
are other formats and are not read.

Keys read: ``asin``, ``category``, ``questionText``, ``questionType``,
``review_snippets`` (list of str), ``answers`` (list of ``{answerText,
answerType, helpful: [n_helpful, n_total]}``), ``is_answerable`` (0/1) and
``qid`` (int, optional). ``random_sentence``, ``top_sentences_IR``,
``top_review_wilson`` and ``top_review_helpful`` are other retrieval
baselines and are not read. A missing, null or wrong-typed key among those
read is a record error naming it (``answers[2].helpful``); so is
``is_answerable`` other than 0/1.

One conversation per question: ``[user: questionText, assistant: answerText]``.

Options
    ``answer`` (``most_helpful`` | ``each``, default ``most_helpful``)
        ``most_helpful`` picks one answer per question: the most helpful votes
        (``helpful[0]``); a tie on votes goes to the higher ratio
        ``helpful[0] / helpful[1]`` (0 when ``helpful[1]`` is 0); a tie on both
        goes to the earlier answer in the list. Counted: ``policy.
        picked_one_of_several`` (a question with more than one usable answer),
        ``policy.tie_broken_by_ratio``, ``policy.tie_broken_by_position``.
        ``each`` makes one conversation per usable answer, id suffix
        ``/a<index>`` (the index in the source ``answers`` list).
    ``context`` (``snippets`` | ``none``, default ``snippets``)
        ``snippets``: the review snippets, stripped, joined with a blank line.
        Empty snippets are left out (``policy.empty_snippet``); a question
        with no snippet at all has ``context = None`` (``policy.no_snippets``).
        ``none``: no context.
    ``splits`` (list, default ``["train", "val", "test"]``)
        The splits to read; the split is the file name before ``-qar``. Files
        of other splits are ignored; a listed split with no file is an error,
        so is a split with both a ``.jsonl`` and a ``.jsonl.gz`` file.

Policies
    * An answer whose ``answerText`` is empty or blank is skipped
      (``policy.empty_answer_skipped``, one per answer).
    * A question with no answers is dropped (``dropped.no_answers``); one
      whose answers are all empty is dropped (``dropped.only_empty_answers``).

Ids: ``amazonqa/<split>-<qid>`` (``/a<index>`` with ``answer: each``). The
split is part of the id because ``convert0.py`` numbers ``qid`` from 0 in
each file, so the same qid occurs in train, val and test. A line without
``qid`` (the files before ``convert0.py``) gets ``amazonqa/<split>-line<n>``
(``policy.qid_from_line``); the two forms cannot collide.

Group: :func:`~explainft.datasets.base.prompt_group` of the question, so the answers to one question
(``answer: each``) and questions worded the same stay on one side of the split.

Meta: ``asin``, ``category``, ``questionType``, ``is_answerable``,
``answerType``, ``helpful`` ([n_helpful, n_total]), ``answer_index`` (in the
source list), ``n_answers`` (length of the source ``answers`` list),
``split``, ``qid`` (or null) and ``source`` = ``{file, line}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError, RecordError
from ..records import Conversation, Turn
from .base import LoadContext, RecordScope, find_files, prompt_group, require

SUFFIXES = ("-qar.jsonl", "-qar.jsonl.gz")
RAW_FILES = [f"**/*{s}" for s in SUFFIXES]
SPLITS = ["train", "val", "test"]

OPTIONS = {
    "answer": (["most_helpful", "each"], "most_helpful"),
    "context": (["snippets", "none"], "snippets"),
    "splits": (list, list(SPLITS)),
}


def split_of(path: Path) -> str:
    """``train-qar.jsonl(.gz)`` -> ``train``."""
    for suffix in SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    raise ValueError(f"not an AmazonQA file: {path.name}")


def select_files(raw_dir: Path, splits: list[str], dataset: str) -> list[tuple[Path, str]]:
    """The files of the listed splits, in the order of ``splits``; errors for a missing or doubled split."""
    by_split: dict[str, list[Path]] = {}
    for path in find_files(raw_dir, RAW_FILES, dataset):
        by_split.setdefault(split_of(path), []).append(path)
    out = []
    for split in splits:
        paths = by_split.get(split, [])
        if not paths:
            raise RecordError(
                "missing_file",
                f"no file for split {split!r} (found splits: "
                f"{', '.join(sorted(by_split)) or 'none'}); set sources.{dataset}.options.splits",
                file=raw_dir,
            )
        if len(paths) > 1:
            raise RecordError(
                "duplicate_file",
                f"split {split!r} has several files: {', '.join(str(p.relative_to(raw_dir)) for p in paths)}",
                file=raw_dir,
            )
        out.append((paths[0], split))
    return out


def check_splits(dataset: str, splits: list) -> list[str]:
    key = f"sources.{dataset}.options.splits"
    if not splits:
        raise ConfigError(key, "must list at least one split")
    for s in splits:
        if not isinstance(s, str) or not s:
            raise ConfigError(key, f"split names must be non-empty strings, got {s!r}")
    if len(set(splits)) != len(splits):
        raise ConfigError(key, f"lists a split twice: {splits!r}")
    return splits


def load(raw_dir: Path, options: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    splits = check_splits(ctx.dataset, options["splits"])
    for path, split in select_files(raw_dir, splits, ctx.dataset):
        ctx.note_file(path, raw_dir)
        rel = str(path.relative_to(raw_dir))
        for rec, obj in ctx.jsonl(path):
            with rec:
                for conv in build(obj, split=split, rel=rel, rec=rec, options=options, ctx=ctx):
                    rec.add(conv)
            yield from rec.take()


def _helpful(ans: dict, where: str) -> list[int]:
    helpful = require(ans, "helpful", list, where=where)
    if len(helpful) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in helpful):
        raise RecordError(
            "wrong_type",
            f"expected [n_helpful, n_total] (two non-negative ints), got {helpful!r}",
            field=f"{where}helpful",
        )
    return helpful


def _key(helpful: list[int]) -> tuple[int, float]:
    votes, total = helpful
    return votes, (votes / total if total else 0.0)


def build(
    obj: Any, *, split: str, rel: str, rec: RecordScope, options: dict[str, Any], ctx: LoadContext
) -> list[Conversation]:
    """The conversations of one source line (a list, built before any is yielded)."""
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"a line must be a JSON object, got {type(obj).__name__}")
    qid = require(obj, "qid", int, allow_none=True) if "qid" in obj else None
    asin = require(obj, "asin", str)
    category = require(obj, "category", str)
    question = require(obj, "questionText", str)
    if not question.strip():
        raise RecordError("empty_turn", "questionText is empty", field="questionText")
    qtype = require(obj, "questionType", str)
    is_answerable = require(obj, "is_answerable", int)
    if is_answerable not in (0, 1):
        raise RecordError("bad_value", f"expected 0 or 1, got {is_answerable!r}", field="is_answerable")
    snippets = require(obj, "review_snippets", list)
    for i, s in enumerate(snippets):
        if not isinstance(s, str):
            raise RecordError("wrong_type", f"expected str, got {type(s).__name__}", field=f"review_snippets[{i}]")
    raw_answers = require(obj, "answers", list)
    answers = []  # (index, text, answerType, helpful) of the usable answers
    for i, ans in enumerate(raw_answers):
        where = f"answers[{i}]."
        if not isinstance(ans, dict):
            raise RecordError("wrong_type", f"expected an object, got {type(ans).__name__}", field=f"answers[{i}]")
        text = require(ans, "answerText", str, where=where)
        atype = require(ans, "answerType", str, where=where)
        helpful = _helpful(ans, where)
        if text.strip():
            answers.append((i, text, atype, helpful))

    # every field is checked before any policy applies, so a bad line is an error, never a drop
    if not raw_answers:
        ctx.drop("no_answers")
        return []
    if not answers:
        ctx.drop("only_empty_answers")
        return []
    if len(answers) < len(raw_answers):
        ctx.count("empty_answer_skipped", len(raw_answers) - len(answers))

    if options["answer"] == "most_helpful":
        picked = [_most_helpful(answers, ctx)]
    else:
        picked = answers

    context = None
    if options["context"] == "snippets":
        kept = [s.strip() for s in snippets if s.strip()]
        if len(kept) < len(snippets):
            ctx.count("empty_snippet", len(snippets) - len(kept))
        if kept:
            context = "\n\n".join(kept)
        else:
            ctx.count("no_snippets")

    if qid is None:
        ctx.count("qid_from_line")
        base_id = f"{ctx.dataset}/{split}-line{rec.line}"
    else:
        base_id = f"{ctx.dataset}/{split}-{qid}"

    # every answer to the question (answer: each) and every question worded the same share the group
    group = prompt_group((Turn("user", question), Turn("assistant", question)))
    out = []
    for index, text, atype, helpful in picked:
        out.append(
            Conversation(
                id=base_id if options["answer"] == "most_helpful" else f"{base_id}/a{index}",
                dataset=ctx.dataset,
                turns=(Turn("user", question), Turn("assistant", text)),
                group=group,
                context=context,
                meta={
                    "asin": asin,
                    "category": category,
                    "questionType": qtype,
                    "is_answerable": is_answerable,
                    "answerType": atype,
                    "helpful": list(helpful),
                    "answer_index": index,
                    "n_answers": len(raw_answers),
                    "split": split,
                    "qid": qid,
                    "source": {"file": rel, "line": rec.line},
                },
            )
        )
    return out


def _most_helpful(answers: list[tuple[int, str, str, list[int]]], ctx: LoadContext):
    """Most votes, then the higher ratio, then the first; counts how ties were broken."""
    if len(answers) > 1:
        ctx.count("picked_one_of_several")
    best = max(_key(a[3]) for a in answers)
    top = [a for a in answers if _key(a[3]) == best]
    if len(top) > 1:
        ctx.count("tie_broken_by_position")
    elif sum(1 for a in answers if a[3][0] == best[0]) > 1:
        ctx.count("tie_broken_by_ratio")
    return top[0]
