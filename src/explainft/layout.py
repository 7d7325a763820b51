"""Where the pipeline's files live: the paths dvc.yaml declares, built in one place."""

from __future__ import annotations

from pathlib import Path


def cell_path(train_set: str, dimension: str, variant: str, seed: int) -> str:
    """``<set>/<dimension>/<variant>/seed_<k>``: where one fine-tune's files live under models/, metrics/, plots/."""
    return f"{train_set}/{dimension}/{variant}/seed_{seed}"


def finetune_dir(root: Path, train_set: str, dimension: str, variant: str, seed: int) -> Path:
    return root / "models" / "finetuned" / cell_path(train_set, dimension, variant, seed)
