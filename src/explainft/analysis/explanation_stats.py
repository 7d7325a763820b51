"""Statistics of the training explanations: the paper's Fig. 3 and Fig. 7 (Finding 4).

One idea, over 500 lines: the paper's Figures 3 and 7, their numbers and plots.

:func:`explanation_stats` takes the TRAIN examples of each (dataset, dimension)
cell and writes, in ``out_dir`` (e.g. ``plots/explanations/``), a CSV for DVC
plots and a PNG rendering of each:

``score_distribution.csv`` (Fig. 3)
    ``dataset, dimension, label, count, share``: one row per cell and label 1..5
    (zero counts included); ``share = count / n`` of the cell.
``token_lengths.csv`` (Fig. 7A)
    ``dataset, dimension, bin_start, bin_end, count``: a histogram of the total
    token length of each example, ``prompt + " " + score + "\\n" + assessment``
    (score = the 1..5 label), tokenised without special tokens. Bins are
    ``[bin_start, bin_end)``, the same grid for every cell, from 0 to the bin
    holding the longest example (zero counts included). The PNG draws one panel
    per dimension with a labelled vertical line at ``context_limit``.
``nonstopword_by_position.csv`` (Fig. 7B)
    ``k, probability, n``: over all explanations (of all cells) with at least
    ``k`` words, the share whose word ``k`` is not a stopword; ``n`` is the
    number of such explanations. ``k = 1 .. K``, ``K = min(max_position,
    longest explanation)``.
``first_words.csv`` (Fig. 7C)
    ``word, count, rank``: the ``top_words`` most frequent non-stopwords among
    the first ``first_n_words`` words of the explanations (every occurrence
    counts), by count descending with ties broken alphabetically (so ranks
    are 1, 2, 3, ... with no shared rank).

Rows sort by dataset (alphabetically), then dimension (the order of
:data:`explainft.records.DIMENSIONS`, unknown ones after, alphabetically), then
label or bin. Floats are written with 6 decimals, so a rerun on the same input
is byte-identical. PNGs are drawn with matplotlib's default style (the user's
matplotlibrc is ignored) on the Agg renderer without pyplot, and saved without
the ``Software`` metadata (PNG carries no creation date), so they too are
byte-identical on the same matplotlib/freetype. Every file is written
atomically (temporary sibling, then rename).

Words are the lower-cased matches of ``[a-z]+(?:'[a-z]+)?`` (typographic
apostrophes are read as ``'``, so "don’t" is one word); stopwords are
``stop_words.get_stop_words("english")``.

The returned summary (for ``metrics/explanations.json``; the caller writes it
with :func:`explainft.fsutil.write_json`)::

    {"context_limit": 8192,
     "cells": {dataset: {dimension: {"n", "explanation_words_mean", "total_tokens_mean",
                                     "total_tokens_max", "total_tokens_p95",
                                     "share_over_context"}}},
     "total_tokens_max": int, "share_over_context": float,   # over all cells
     "nonstopword": {"p_k1", "n_k1", "p_k25", "n_k25"}}       # p is null where n == 0

``share_over_context`` counts examples with total tokens strictly above
``context_limit``; ``total_tokens_p95`` is numpy's default (linear)
percentile. Floats are rounded to 6 decimals.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..fsutil import atomic_open
from ..records import DIMENSIONS, Example

__all__ = [
    "FILES",
    "LABELS",
    "WORD_RE",
    "dvc_plot_specs",
    "explanation_stats",
    "is_stopword",
    "plot_style",
    "stopwords",
    "total_text",
    "words",
]

LABELS = (1, 2, 3, 4, 5)
WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})

# file stem -> CSV columns
FILES: dict[str, tuple[str, ...]] = {
    "score_distribution": ("dataset", "dimension", "label", "count", "share"),
    "token_lengths": ("dataset", "dimension", "bin_start", "bin_end", "count"),
    "nonstopword_by_position": ("k", "probability", "n"),
    "first_words": ("word", "count", "rank"),
}

_TOKENIZE_BATCH = 256
_AUTO_BINS = 40  # the automatic bin width aims at about this many bins up to the longest example
_PNG_METADATA = {"Software": None}  # drop "Software: Matplotlib version ..."; Agg PNGs carry no date
_RC = {"figure.dpi": 100, "savefig.dpi": 100}


# --------------------------------------------------------------------------- words


@functools.lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """The English stopwords of the ``stop-words`` package, lower-cased."""
    from stop_words import get_stop_words

    return frozenset(w.lower() for w in get_stop_words("english"))


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words (with one optional apostrophe part: "don't", "model's")."""
    return WORD_RE.findall(text.lower().translate(_APOSTROPHES))


def is_stopword(word: str) -> bool:
    return word in stopwords()


def total_text(example: Example, prompt: str) -> str:
    """What the student reads and writes in training: ``prompt + " " + label + "\\n" + assessment``."""
    return f"{prompt} {example.label}\n{example.assessment}"


# --------------------------------------------------------------------------- main entry


def explanation_stats(
    examples: Mapping[tuple[str, str], Sequence[Example]],
    *,
    tokenizer: Any,
    context_limit: int,
    prompt_fn: Callable[[Example], str],
    out_dir: str | Path,
    max_position: int | None = 150,
    first_n_words: int = 25,
    top_words: int = 30,
    bin_width: int | None = None,
) -> dict[str, Any]:
    """Write the explanation statistics' CSVs and PNGs into ``out_dir``; return the summary.

    ``examples`` maps (dataset, dimension) to that cell's TRAIN examples.
    ``tokenizer(texts, add_special_tokens=False)["input_ids"]`` must give one id
    list per text (any HF tokenizer does). ``prompt_fn(example)`` is the prompt
    text the student sees. ``max_position`` caps K of the non-stopword curve
    (None: the longest explanation). ``bin_width`` is the token histogram's bin
    width (None: the smallest 1/2/5 x 10^k width giving at most 40 bins up to the longest).

    Raises ValueError for no cells, an empty cell (naming it), an example whose
    dimension is not its cell's, or a bad parameter.
    """
    if not isinstance(context_limit, int) or isinstance(context_limit, bool) or context_limit <= 0:
        raise ValueError(f"context_limit must be a positive integer, got {context_limit!r}")
    if max_position is not None and max_position < 1:
        raise ValueError(f"max_position must be >= 1 or None, got {max_position!r}")
    if first_n_words < 1 or top_words < 1:
        raise ValueError(f"first_n_words and top_words must be >= 1, got {first_n_words!r}, {top_words!r}")
    if bin_width is not None and bin_width < 1:
        raise ValueError(f"bin_width must be >= 1 or None, got {bin_width!r}")
    if not examples:
        raise ValueError("explanation_stats: no (dataset, dimension) cells given")

    cells = _ordered_cells(examples)
    for cell in cells:
        exs = examples[cell]
        if not exs:
            raise ValueError(f"explanation_stats: cell (dataset={cell[0]!r}, dimension={cell[1]!r}) has no examples")
        for ex in exs:
            if ex.dimension != cell[1]:
                raise ValueError(
                    f"explanation_stats: example {ex.id!r} has dimension {ex.dimension!r} "
                    f"but is in cell (dataset={cell[0]!r}, dimension={cell[1]!r})"
                )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    word_lists = {cell: [words(ex.assessment) for ex in examples[cell]] for cell in cells}
    totals = {
        cell: _token_lengths(tokenizer, [total_text(ex, prompt_fn(ex)) for ex in examples[cell]], cell)
        for cell in cells
    }
    all_words = [ws for cell in cells for ws in word_lists[cell]]

    # 1. score distribution
    score_rows = _score_rows(examples, cells)
    _write_csv(out_dir / "score_distribution.csv", FILES["score_distribution"], score_rows)
    _render(out_dir / "score_distribution.png", _score_figure, score_rows, cells)

    # 2. token lengths
    width = bin_width or _auto_bin_width(max(max(t) for t in totals.values()))
    token_rows = _token_rows(totals, cells, width)
    _write_csv(out_dir / "token_lengths.csv", FILES["token_lengths"], token_rows)
    _render(out_dir / "token_lengths.png", _token_figure, token_rows, cells, context_limit)

    # 3. non-stopword probability by position
    position_rows = _position_rows(all_words, max_position)
    _write_csv(out_dir / "nonstopword_by_position.csv", FILES["nonstopword_by_position"], position_rows)
    _render(out_dir / "nonstopword_by_position.png", _position_figure, position_rows)

    # 4. first words
    first_rows = _first_word_rows(all_words, first_n_words, top_words)
    _write_csv(out_dir / "first_words.csv", FILES["first_words"], first_rows)
    _render(out_dir / "first_words.png", _first_words_figure, first_rows, first_n_words)

    return _summary(cells, word_lists, totals, all_words, context_limit)


# --------------------------------------------------------------------------- computations


def _dimension_key(dim: str) -> tuple[int, str]:
    return (DIMENSIONS.index(dim), "") if dim in DIMENSIONS else (len(DIMENSIONS), dim)


def _ordered_cells(examples: Mapping[tuple[str, str], Any]) -> list[tuple[str, str]]:
    for key in examples:
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
            raise ValueError(f"explanation_stats: cell keys must be (dataset, dimension) string pairs, got {key!r}")
    return sorted(examples, key=lambda c: (c[0], _dimension_key(c[1])))


def _ordered_dimensions(cells: Iterable[tuple[str, str]]) -> list[str]:
    return sorted({d for _, d in cells}, key=_dimension_key)


def _token_lengths(tokenizer: Any, texts: list[str], cell: tuple[str, str]) -> list[int]:
    lengths: list[int] = []
    for i in range(0, len(texts), _TOKENIZE_BATCH):
        chunk = texts[i : i + _TOKENIZE_BATCH]
        ids = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        if len(ids) != len(chunk):
            raise ValueError(
                f"explanation_stats: tokenizer returned {len(ids)} id lists for {len(chunk)} texts "
                f"in cell (dataset={cell[0]!r}, dimension={cell[1]!r})"
            )
        lengths.extend(len(x) for x in ids)
    return lengths


def _score_rows(examples: Mapping[tuple[str, str], Sequence[Example]], cells: list[tuple[str, str]]) -> list[tuple]:
    rows = []
    for ds, dim in cells:
        exs = examples[(ds, dim)]
        counts = Counter(ex.label for ex in exs)
        for label in LABELS:
            rows.append((ds, dim, label, counts[label], counts[label] / len(exs)))
    return rows


def _auto_bin_width(longest: int) -> int:
    raw = max(1.0, longest / _AUTO_BINS)
    exp = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * exp >= raw:
            return int(m * exp)
    return int(10 * exp)  # pragma: no cover


def _token_rows(totals: dict[tuple[str, str], list[int]], cells: list[tuple[str, str]], width: int) -> list[tuple]:
    n_bins = max(max(t) for t in totals.values()) // width + 1
    rows = []
    for ds, dim in cells:
        counts = np.bincount(np.asarray(totals[(ds, dim)], dtype=np.int64) // width, minlength=n_bins)
        rows.extend((ds, dim, b * width, (b + 1) * width, int(counts[b])) for b in range(n_bins))
    return rows


def _position_rows(all_words: list[list[str]], max_position: int | None) -> list[tuple]:
    longest = max((len(ws) for ws in all_words), default=0)
    k_max = longest if max_position is None else min(max_position, longest)
    stops = stopwords()
    n = np.zeros(k_max, dtype=np.int64)
    content = np.zeros(k_max, dtype=np.int64)
    for ws in all_words:
        m = min(len(ws), k_max)
        n[:m] += 1
        content[:m] += np.fromiter((w not in stops for w in ws[:m]), dtype=bool, count=m)
    return [(k + 1, content[k] / n[k], int(n[k])) for k in range(k_max)]


def _first_word_rows(all_words: list[list[str]], first_n: int, top: int) -> list[tuple]:
    stops = stopwords()
    counts = Counter(w for ws in all_words for w in ws[:first_n] if w not in stops)
    ranked = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:top]
    return [(w, c, r) for r, (w, c) in enumerate(ranked, start=1)]


def _r6(x: float) -> float:
    return round(float(x), 6)


def _summary(cells, word_lists, totals, all_words, context_limit: int) -> dict[str, Any]:
    out: dict[str, Any] = {"context_limit": context_limit, "cells": {}}
    for ds, dim in cells:
        t = np.asarray(totals[(ds, dim)], dtype=np.int64)
        out["cells"].setdefault(ds, {})[dim] = {
            "n": int(t.size),
            "explanation_words_mean": _r6(np.mean([len(ws) for ws in word_lists[(ds, dim)]])),
            "total_tokens_mean": _r6(t.mean()),
            "total_tokens_max": int(t.max()),
            "total_tokens_p95": _r6(np.percentile(t, 95)),
            "share_over_context": _r6(np.mean(t > context_limit)),
        }
    every = np.concatenate([np.asarray(totals[c], dtype=np.int64) for c in cells])
    out["total_tokens_max"] = int(every.max())
    out["share_over_context"] = _r6(np.mean(every > context_limit))
    stops = stopwords()
    nsw: dict[str, Any] = {}
    for k in (1, 25):
        having = [ws for ws in all_words if len(ws) >= k]
        nsw[f"n_k{k}"] = len(having)
        nsw[f"p_k{k}"] = _r6(sum(ws[k - 1] not in stops for ws in having) / len(having)) if having else None
    out["nonstopword"] = nsw
    return out


# --------------------------------------------------------------------------- output


def _fmt(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6f}"
    if isinstance(v, np.integer):
        return int(v)
    return v


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with atomic_open(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow([_fmt(v) for v in row])


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """matplotlib's default style whatever the user's matplotlibrc says (figures build and save inside it)."""
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(_RC):
        yield


def _render(path: Path, builder: Callable[..., Any], *args: Any) -> None:
    """Build a figure and write it as PNG atomically (saved to memory first, then one write)."""
    with plot_style():
        fig = builder(*args)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata=_PNG_METADATA)
    with atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())


# --------------------------------------------------------------------------- figures
# Drawn on bare Figure objects (Agg when saved as PNG): no pyplot, no global backend switch,
# no figure registry to leak. Each builder returns the Figure (tests inspect it); _render runs
# it inside plot_style().


def _new_figure(ncols: int = 1, *, width: float = 5.0, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _figure_legend(fig: Any, axes: list) -> None:
    """One legend beside the panels (datasets, then the context-limit line), each label once."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), loc="outside right upper", fontsize="small")


def _dataset_colors(cells: list[tuple[str, str]]) -> dict[str, str]:
    datasets = sorted({ds for ds, _ in cells})
    return {ds: f"C{i % 10}" for i, ds in enumerate(datasets)}


def _score_figure(rows: list[tuple], cells: list[tuple[str, str]]):
    dims = _ordered_dimensions(cells)
    colors = _dataset_colors(cells)
    fig, axes = _new_figure(len(dims))
    for ax, dim in zip(axes, dims):
        datasets = [ds for ds, d in cells if d == dim]
        width = 0.8 / len(datasets)
        for j, ds in enumerate(datasets):
            shares = [share for (r_ds, r_dim, _, _, share) in rows if r_ds == ds and r_dim == dim]
            xs = [label - 0.4 + width * (j + 0.5) for label in LABELS]
            ax.bar(xs, shares, width=width, color=colors[ds], label=ds)
        ax.set_title(dim)
        ax.set_xticks(LABELS)
        ax.set_xlabel("label")
        ax.set_ylabel("share of train examples")
    _figure_legend(fig, axes)
    fig.suptitle("Score distribution per dataset")
    return fig


def _token_figure(rows: list[tuple], cells: list[tuple[str, str]], context_limit: int):
    dims = _ordered_dimensions(cells)
    colors = _dataset_colors(cells)
    fig, axes = _new_figure(len(dims))
    for ax, dim in zip(axes, dims):
        top_edge = 0
        for ds in [ds for ds, d in cells if d == dim]:
            sel = [r for r in rows if r[0] == ds and r[1] == dim]
            edges = [r[2] for r in sel] + [sel[-1][3]]
            ax.stairs([r[4] for r in sel], edges, color=colors[ds], label=ds)
            top_edge = max(top_edge, edges[-1])
        ax.axvline(context_limit, color="red", linestyle="--", label=f"context limit ({context_limit} tokens)")
        ax.text(
            context_limit,
            0.98,
            f" {context_limit}",
            transform=ax.get_xaxis_transform(),
            color="red",
            ha="right",
            va="top",
            rotation=90,
            fontsize="small",
        )
        ax.set_xlim(0, max(context_limit, top_edge) * 1.05)
        ax.set_title(dim)
        ax.set_xlabel("prompt + score + explanation (tokens)")
        ax.set_ylabel("train examples")
    _figure_legend(fig, axes)
    fig.suptitle("Total token length per example")
    return fig


def _position_figure(rows: list[tuple]):
    fig, (ax,) = _new_figure(width=6.0)
    ax.plot([r[0] for r in rows], [r[1] for r in rows], color="C0")
    ax.set_ylim(0, 1)
    ax.set_xlim(left=1)
    ax.set_xlabel("word position k in the explanation")
    ax.set_ylabel("P(word k is not a stopword)")
    ax.set_title("Non-stopword probability by position")
    return fig


def _first_words_figure(rows: list[tuple], first_n: int):
    fig, (ax,) = _new_figure(width=5.0, height=max(3.0, 0.22 * len(rows) + 1.2))
    ax.barh([r[0] for r in rows], [r[1] for r in rows], color="C0")
    ax.invert_yaxis()  # rank 1 on top
    ax.set_xlabel("occurrences")
    ax.set_title(f"Most frequent non-stopwords in the first {first_n} words")
    return fig


# --------------------------------------------------------------------------- DVC


def dvc_plot_specs(out_dir: str = "plots/explanations") -> dict[str, list]:
    """The top-level ``plots:`` entries of ``dvc.yaml`` for :func:`explanation_stats`' outputs.

    Returns ``{"plots": [...]}``: merge the list into ``dvc.yaml``'s top-level
    ``plots:`` (DVC >= 3 schema: each entry a path with its x/y columns,
    template, title and axis labels, or a bare PNG path shown as an image).
    ``out_dir`` is the folder the stage writes to, relative to the repository
    root; the stage must also list that folder (or the files) among its outs,
    e.g. ``plots: [{plots/explanations: {cache: false}}]``.

    ``score_distribution.csv`` and ``token_lengths.csv`` hold every
    (dataset, dimension) cell in one file; DVC's templates cannot group by a
    column, so their interactive plots overlay the cells and the PNGs are the
    figures to read; the single-series ``nonstopword_by_position.csv`` and
    ``first_words.csv`` plot cleanly.
    """
    d = out_dir.rstrip("/")
    return {
        "plots": [
            {
                f"{d}/score_distribution.csv": {
                    "x": "label",
                    "y": "share",
                    "template": "scatter",
                    "title": "Score distribution (all cells)",
                    "x_label": "label",
                    "y_label": "share",
                }
            },
            {
                f"{d}/token_lengths.csv": {
                    "x": "bin_start",
                    "y": "count",
                    "template": "scatter",
                    "title": "Total token length (all cells)",
                    "x_label": "tokens (bin start)",
                    "y_label": "examples",
                }
            },
            {
                f"{d}/nonstopword_by_position.csv": {
                    "x": "k",
                    "y": "probability",
                    "template": "linear",
                    "title": "P(word k is not a stopword)",
                    "x_label": "word position k",
                    "y_label": "probability",
                }
            },
            {
                f"{d}/first_words.csv": {
                    "x": "count",
                    "y": "word",
                    "template": "bar_horizontal_sorted",
                    "title": "Most frequent non-stopwords in the first words",
                    "x_label": "occurrences",
                    "y_label": "word",
                }
            },
            f"{d}/score_distribution.png",
            f"{d}/token_lengths.png",
            f"{d}/nonstopword_by_position.png",
            f"{d}/first_words.png",
        ]
    }
