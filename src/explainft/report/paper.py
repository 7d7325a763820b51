"""The paper's numbers (Shah et al., 2025; the CSVs in paper/, described in paper/README.md).

* :data:`PAPER_NAMES`: our set names -> the paper's row and column names;
* :data:`PAPER_TABLES`: (dimension, metric) -> (the table's CSV, its number in the paper);
* :func:`paper_table`: one table as published (``metric="random"``: Table 4, random words, naturalness MSE);
* :func:`paper_wins`: the cells where "(E)" beats score-only in the paper's MSE tables.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

# our set names -> the paper's column and row names (paper/README.md)
PAPER_NAMES = {
    "chatbot_arena": "ChatbotAC",
    "hh_rlhf_chosen": "HH-C",
    "hh_rlhf_rejected": "HH-R",
    "amazonqa": "AmazonQA",
    "coqa": "CoQA",
    "cornell_movie_dialogs": "Movies",
    "mixed": "Mixed",
    "golden": "Golden",
}
PAPER_TABLES = {
    ("naturalness", "mse"): ("table3_naturalness_mse.csv", 3),
    ("naturalness", "mae"): ("table7_naturalness_mae.csv", 7),
    ("comprehensiveness", "mse"): ("table8_comprehensiveness_mse.csv", 8),
    ("comprehensiveness", "mae"): ("table9_comprehensiveness_mae.csv", 9),
    ("on_topic", "mse"): ("table10_on_topic_mse.csv", 10),
    ("on_topic", "mae"): ("table11_on_topic_mae.csv", 11),
}
# the paper's set names -> ours
OUR_NAMES = {v: k for k, v in PAPER_NAMES.items()}
# variant -> the row of the paper's Table 4 (random words instead of explanations)
PAPER_RANDOM_ROWS = {
    "none": "Mixed",
    "assessment": "Mixed (E)",
    "fully_random": "Fully",
    "shuffle": "Shuffle",
    "associated": "Associated",
    "weighted_shuffle": "W-Shuffle",
    "weighted_associated": "W-Associated",
}


def paper_table(root: Path, dim: str, metric: str) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of the paper's table of ``dim`` x ``metric`` as strings; None when paper/ lacks it."""
    name = (
        ("table4_random_naturalness_mse.csv", 4)
        if (dim, metric) == ("naturalness", "random")
        else PAPER_TABLES.get((dim, metric))
    )
    if name is None or not (root / "paper" / name[0]).is_file():
        return None
    with open(root / "paper" / name[0], newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def paper_wins(root: Path, dims: Sequence[str]) -> tuple[int, int]:
    """(cells where "(E)" beats score-only on its own test set, cells) in the paper's MSE tables."""
    wins = total = 0
    for dim in dims:
        t = paper_table(root, dim, "mse")
        if t is None:
            continue
        header, rows = t
        by_row = {r[0]: r[1:] for r in rows}
        for label, values in by_row.items():
            if label.endswith(" (E)") or label == "Baseline" or label not in header:
                continue
            e = by_row.get(f"{label} (E)")
            if e is None:
                continue
            col = header.index(label) - 1
            total += 1
            wins += float(e[col]) < float(values[col])
    return wins, total
