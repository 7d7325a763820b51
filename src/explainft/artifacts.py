"""The fine-tuned models as DVC artifacts: the ``artifacts:`` section of dvc.yaml, generated from the profile.

DVC's ``artifacts:`` section cannot be templated over a matrix, so it is
written out here from the profile's grid (:meth:`FinetuneConfig.cells`, the
main grid and the ablation grid): one entry per fine-tune, ``type: model``,
labelled with the training set, dimension, variant, seed and student, so that
``dvc artifacts get``, ``dvc ls`` and model registries (DVC Studio, GTO) find
them. ``explainft use`` rewrites the section with the profile it activates;
``explainft artifacts --check`` (and the test suite) fail when dvc.yaml and
params.yaml have drifted apart.

The section is the last thing in dvc.yaml, after :data:`MARKER`; everything
before the marker is left byte for byte as it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MARKER = "# --- artifacts: generated from the profile's grid by `explainft artifacts`; do not edit below ---\n"
_NAME_OK = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")


def artifact_name(train_set: str, dimension: str, variant: str, seed: int) -> str:
    """``<set>-<dimension>-<variant>-seed<k>``, e.g. ``mixed-on_topic-assessment-seed0``."""
    name = f"{train_set}-{dimension}-{variant}-seed{seed}".lower()
    if not _NAME_OK.match(name):
        raise ValueError(f"{name!r} is not a valid DVC artifact name (lower-case letters, digits, - and _)")
    return name


def artifacts(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{name: {path, type, desc, labels}} for every fine-tune of the profile, in grid order."""
    from .config import finetune_config
    from .training_stages import cell_path

    fc = finetune_config(params)
    ablation = set(fc.ablation.cells(fc.seeds)) if fc.ablation else set()
    method = "LoRA adapter" if fc.method == "lora" else "fully fine-tuned model"
    out: dict[str, dict[str, Any]] = {}
    for cell in fc.cells():
        s, d, v, k = cell
        grid = "ablation" if cell in ablation else "main"
        out[artifact_name(s, d, v, k)] = {
            "path": f"models/finetuned/{cell_path(s, d, v, k)}/model",
            "type": "model",
            "desc": f"{fc.student} {method} rating {d}, trained on {s} ({v} targets, seed {k}; {grid} grid)",
            "labels": [f"dataset:{s}", f"dimension:{d}", f"variant:{v}", f"seed:{k}", f"student:{fc.student}",
                       f"grid:{grid}"],
        }
    return out


def render(params: dict[str, Any]) -> str:
    """The generated tail of dvc.yaml (MARKER, then the ``artifacts:`` mapping as YAML)."""
    import yaml

    body = yaml.safe_dump({"artifacts": artifacts(params)}, sort_keys=False, width=1000, default_flow_style=None)
    return MARKER + body


def _split(text: str, where: Path) -> tuple[str, str]:
    if MARKER in text:
        head, tail = text.split(MARKER, 1)
        return head, MARKER + tail
    if re.search(r"^artifacts:", text, flags=re.M):
        raise ValueError(f"{where} has an artifacts: section without the marker line; move it below:\n{MARKER}")
    return (text if text.endswith("\n") else text + "\n") + "\n", ""


def is_current(dvc_yaml: Path, params: dict[str, Any]) -> bool:
    """Does dvc.yaml's generated section match the profile?"""
    _head, tail = _split(Path(dvc_yaml).read_text(), Path(dvc_yaml))
    return tail == render(params)


def write(dvc_yaml: Path, params: dict[str, Any]) -> int:
    """Rewrite dvc.yaml's generated section for the profile (atomically); returns the number of artifacts."""
    from .fsutil import atomic_open

    path = Path(dvc_yaml)
    head, _tail = _split(path.read_text(), path)
    with atomic_open(path) as fh:
        fh.write(head + render(params))
    return len(artifacts(params))
