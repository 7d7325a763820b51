"""The report's formatting: numbers as text, Markdown tables, CSV files, the dimensions' titles.

Everything here is deterministic text: the same values give byte-identical output (:mod:`explainft.report`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..fsutil import atomic_open

#: what a section writes its text with (``io.StringIO.write``)
Writer = Callable[[str], Any]

DIMENSION_TITLES = {"naturalness": "Naturalness", "comprehensiveness": "Comprehensiveness", "on_topic": "On-topic"}


def fmt(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals; a dash for a missing value (None or NaN)."""
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Atomically write a CSV file: floats with 6 decimals, None as an empty field, ``\\n`` line ends."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else (f"{v:.6f}" if isinstance(v, float) else v) for v in r])
    with atomic_open(path) as fh:
        fh.write(buf.getvalue())
