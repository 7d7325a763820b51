"""The fine-tuned models as DVC artifacts: ``models/dvc.yaml``, a DVC file generated from the profile.

DVC's ``artifacts:`` section cannot be templated over a matrix, so it is
written out here from the profile's grid (:meth:`FinetuneConfig.cells`, the
main grid and the ablation grid): one entry per fine-tune, ``type: model``,
labelled with the training set, dimension, variant, seed and student, so that
``dvc artifacts get``, ``dvc ls`` and model registries (DVC Studio, GTO) find
them.

The entries live in their own file, :data:`ARTIFACTS_FILE` (``models/dvc.yaml``),
not in the hand-written ``dvc.yaml`` at the root. DVC reads every ``dvc.yaml``
of the repository; an artifact declared in ``models/dvc.yaml`` is addressed as
``models:<name>`` (https://dvc.org/doc/command-reference/artifacts/get), e.g.
``dvc artifacts get <repo> models:mixed-on_topic-assessment-seed0``, and DVC
joins its ``path`` to that folder (``Artifacts.get_path`` in DVC's
``dvc/repo/artifacts.py``), so the paths here are
``finetuned/<set>/<dimension>/<variant>/seed_<k>/model``.
``models/`` itself is no DVC output (its subfolders ``student`` and
``finetuned/.../model`` are), and ``.gitignore`` ignores everything in it
except this file.

The file holds nothing but :data:`HEADER` and the ``artifacts:`` mapping:
``explainft use`` rewrites it whole with the profile it activates,
``explainft artifacts`` with params.yaml's, and ``explainft artifacts --check``
(and the test suite) fail when it and params.yaml have drifted apart, or when
the root ``dvc.yaml`` declares ``artifacts:`` of its own. Nothing here ever
writes the root ``dvc.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from .config import finetune_config
from .fsutil import atomic_open
from .layout import cell_path

ARTIFACTS_FILE = PurePosixPath("models") / "dvc.yaml"  # relative to the project root
HEADER = (
    "# Generated from params.yaml's grid by `explainft artifacts` (and `explainft use <profile>`); do not edit.\n"
    "# One DVC artifact per fine-tune; each path is relative to this folder (models/).\n"
)
_NAME_OK = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")
_TOP_ARTIFACTS = re.compile(r"^artifacts\s*:", flags=re.M)


def artifact_name(train_set: str, dimension: str, variant: str, seed: int) -> str:
    """``<set>-<dimension>-<variant>-seed<k>``, e.g. ``mixed-on_topic-assessment-seed0``."""
    name = f"{train_set}-{dimension}-{variant}-seed{seed}".lower()
    if not _NAME_OK.match(name):
        raise ValueError(f"{name!r} is not a valid DVC artifact name (lower-case letters, digits, - and _)")
    return name


def artifacts_file(root: str | Path) -> Path:
    """The generated DVC file of the project at ``root``."""
    return Path(root) / ARTIFACTS_FILE


def artifacts(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{name: {path, type, desc, labels}} for every fine-tune of the profile, in grid order.

    ``path`` is relative to :data:`ARTIFACTS_FILE`'s folder (``models/``), as DVC reads it.
    """
    fc = finetune_config(params)
    ablation = set(fc.ablation.cells(fc.seeds)) if fc.ablation else set()
    method = "LoRA adapter" if fc.method == "lora" else "fully fine-tuned model"
    out: dict[str, dict[str, Any]] = {}
    for cell in fc.cells():
        s, d, v, k = cell
        grid = "ablation" if cell in ablation else "main"
        out[artifact_name(s, d, v, k)] = {
            "path": f"finetuned/{cell_path(s, d, v, k)}/model",
            "type": "model",
            "desc": f"{fc.student} {method} rating {d}, trained on {s} ({v} targets, seed {k}; {grid} grid)",
            "labels": [
                f"dataset:{s}",
                f"dimension:{d}",
                f"variant:{v}",
                f"seed:{k}",
                f"student:{fc.student}",
                f"grid:{grid}",
            ],
        }
    return out


def render(params: dict[str, Any]) -> str:
    """The whole text of :data:`ARTIFACTS_FILE` for the profile: :data:`HEADER`, then ``artifacts:`` as YAML."""
    import yaml

    body = yaml.safe_dump({"artifacts": artifacts(params)}, sort_keys=False, width=1000, default_flow_style=None)
    return HEADER + body


def drift(root: str | Path, params: dict[str, Any]) -> str | None:
    """What is out of step at ``root`` (a sentence naming the file and the fix), or None when all is current."""
    root = Path(root)
    main = root / "dvc.yaml"
    if main.is_file() and _TOP_ARTIFACTS.search(main.read_text(encoding="utf-8")):
        return (
            f"{main} declares artifacts: of its own; the models are declared in {ARTIFACTS_FILE} (generated "
            f"by `explainft artifacts`): delete the section from {main}"
        )
    path = artifacts_file(root)
    if not path.is_file():
        return f"{path} is missing: run `explainft artifacts`"
    if path.read_text(encoding="utf-8") != render(params):
        return f"{path} does not match params.yaml's grid: run `explainft artifacts`"
    return None


def is_current(root: str | Path, params: dict[str, Any]) -> bool:
    """Does the project's generated :data:`ARTIFACTS_FILE` match the profile (and is it the only declaration)?"""
    return drift(root, params) is None


def write(root: str | Path, params: dict[str, Any]) -> int:
    """(Re)write :data:`ARTIFACTS_FILE` under ``root`` for the profile, atomically; returns the number of artifacts.

    Only that file is written; its folder is created if missing.
    """
    path = artifacts_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        fh.write(render(params))
    return len(artifacts(params))
