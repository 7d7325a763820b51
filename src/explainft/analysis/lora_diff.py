"""How far apart two fine-tunes' weight updates are, per module type (the paper's Table 5, appendix A.4).

Two students of the same base are compared: A, trained with explanations in
the target, and B, trained on the score only. For every adapted projection
(decoder block ``i``, type ``t`` in :data:`explainft.architecture.MODULE_TYPES`)
the Frobenius norm ``||ΔW_A − ΔW_B||_F`` is computed, summed over blocks per
type, and the per-type sums are divided by their largest (the paper's row
normalisation: the largest type is 1.0).

LoRA adapters (a folder with ``adapter_config.json`` and
``adapter_model.safetensors``)
    ``ΔW = s·B·A`` with peft's ``lora_A.weight`` (r×in), ``lora_B.weight``
    (out×r) and ``s = lora_alpha / r`` (``lora_alpha / sqrt(r)`` with
    ``use_rslora``); ``r`` and ``alpha`` per module follow the config's
    ``rank_pattern``/``alpha_pattern`` exactly as peft resolves them
    (``peft.utils.other.get_pattern_key``), and ``r`` is checked against the
    tensors' shapes. The two adapters may use different ranks (per module
    too), but must adapt the same modules with the same in/out shapes.
    The out×in difference is never materialised: with
    ``U = [s_a·B_a, −s_b·B_b]`` (out×(r_a+r_b)) and ``V = [A_a; A_b]``
    ((r_a+r_b)×in), ``ΔW_A − ΔW_B = U·V`` and
    ``||U·V||_F² = trace((UᵀU)(VVᵀ)) = Σ (UᵀU) ⊙ (VVᵀ)`` (both Gram matrices
    are symmetric), computed in float64 in (r_a+r_b)² space. Nothing but the
    safetensors file is read; no model is loaded. DoRA adapters (whose update
    is not ``s·B·A``) and bias-carrying LoRA are refused.
Full fine-tunes (a folder with ``model.safetensors``, or a sharded
``model.safetensors.index.json``; the project's default tiny student)
    ``ΔW_A − ΔW_B = W_A − W_B`` (the shared base cancels), normed directly in
    float64, one tensor pair at a time.

A training run's folder (``out_dir``, whose ``model/`` holds the weights) is
accepted too. Tensors that are not block projections (embeddings, norms,
``modules_to_save`` copies of the head) are skipped and listed.

Functions
---------
``weight_differences(dir_a, dir_b, *, brute_force=False) -> dict``
    ``{"kind": "lora"|"full", "n_layers", "n_modules", "module_types",
    "per_layer": {type: [norm of block 0, 1, ... or None where not adapted]},
    "per_type": {type: sum over blocks}, "normalised": {type: per_type / max},
    "skipped": [tensor names]}`` with types in :data:`TABLE5_COLUMNS` order
    (those present). All-zero differences normalise to zeros.
    ``brute_force`` materialises each ΔW (tests only).
``table_row(result) -> list[float | None]``
    ``normalised`` in the column order of ``paper/table5_lora_weight_differences.csv``.
``heatmap(per_layer, path, title) -> Path``
    PNG, blocks (rows) × module types (columns), byte-identical on rerun.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..architecture import MODULE_TYPES, layer_index, module_type
from ..errors import ExplainftError
from ..fsutil import atomic_open
from .explanation_stats import plot_style

__all__ = ["TABLE5_COLUMNS", "WeightDiffError", "heatmap", "table_row", "weight_differences"]

# The paper's Table 5 column order (MLP first): paper/table5_lora_weight_differences.csv after dimension, dataset.
TABLE5_COLUMNS: tuple[str, ...] = ("down_proj", "gate_proj", "up_proj", "k_proj", "o_proj", "q_proj", "v_proj")
assert sorted(TABLE5_COLUMNS) == sorted(MODULE_TYPES)

_ADAPTER_CONFIG = "adapter_config.json"
_ADAPTER_WEIGHTS = "adapter_model.safetensors"
_FULL_WEIGHTS = "model.safetensors"
_FULL_INDEX = "model.safetensors.index.json"
_PEFT_PREFIX = "base_model.model."
# "<module>.lora_A.weight" (peft's saved form) or "<module>.lora_A.<adapter>.weight" (a live state dict)
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


class WeightDiffError(ExplainftError, ValueError):
    """Two fine-tunes cannot be compared (names the folder, the module or the setting)."""


# --------------------------------------------------------------------------- folders


def _weights_folder(path: str | Path) -> tuple[Path, str]:
    """(folder holding the weights, "lora"|"full") for a model folder or a training run's folder."""
    p = Path(path)
    for cand in (p, p / "model"):
        if (cand / _ADAPTER_CONFIG).is_file():
            if not (cand / _ADAPTER_WEIGHTS).is_file():
                raise WeightDiffError(
                    f"{cand}: has {_ADAPTER_CONFIG} but no {_ADAPTER_WEIGHTS}; save the adapter "
                    "with safetensors (peft's default)"
                )
            return cand, "lora"
        if (cand / _FULL_WEIGHTS).is_file() or (cand / _FULL_INDEX).is_file():
            return cand, "full"
    if not p.exists():
        raise WeightDiffError(f"{p}: no such folder")
    raise WeightDiffError(
        f"{p}: holds neither a LoRA adapter ({_ADAPTER_CONFIG} + {_ADAPTER_WEIGHTS}) nor a full "
        f"model ({_FULL_WEIGHTS}), nor a model/ folder with one; point at a fine-tune's model/ "
        "folder"
    )


def _tensor_files(folder: Path, kind: str) -> dict[str, Path]:
    """tensor name -> safetensors file that holds it."""
    from safetensors import safe_open

    if kind == "lora":
        files = [folder / _ADAPTER_WEIGHTS]
    elif (folder / _FULL_WEIGHTS).is_file():
        files = [folder / _FULL_WEIGHTS]
    else:
        index = json.loads((folder / _FULL_INDEX).read_text(encoding="utf-8"))
        files = sorted({folder / f for f in index["weight_map"].values()})
    out: dict[str, Path] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            for k in fh.keys():
                out[k] = f
    return out


class _Reader:
    """Reads one tensor at a time (float64) from a set of safetensors files, keeping them open."""

    def __init__(self, files: Mapping[str, Path]):
        self.files = files
        self._open: dict[Path, Any] = {}

    def __call__(self, name: str) -> Any:
        from safetensors import safe_open

        f = self.files[name]
        if f not in self._open:
            self._open[f] = safe_open(str(f), framework="pt")
        return self._open[f].get_tensor(name).double()


def _split(names: Sequence[str]) -> tuple[dict[str, tuple[int, str]], list[str]]:
    """(module name -> (block index, type) for block projections, the other names)."""
    keep: dict[str, tuple[int, str]] = {}
    skipped: list[str] = []
    for n in names:
        t, i = module_type(n), layer_index(n)
        if t is None or i is None:
            skipped.append(n)
        else:
            keep[n] = (i, t)
    return keep, skipped


# --------------------------------------------------------------------------- LoRA


def _lora_config(folder: Path) -> dict[str, Any]:
    path = folder / _ADAPTER_CONFIG
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WeightDiffError(f"{path}: cannot read the adapter config ({e})") from None
    peft_type = str(cfg.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise WeightDiffError(f"{path}: peft_type {peft_type!r}; only LoRA adapters are compared")
    if cfg.get("use_dora"):
        raise WeightDiffError(
            f"{path}: a DoRA adapter (use_dora: true) is not a plain s·B·A update; compare merged full models instead"
        )
    if cfg.get("lora_bias"):
        raise WeightDiffError(f"{path}: lora_bias: true adds a bias update that s·B·A does not cover")
    return cfg


def _lora_modules(folder: Path) -> tuple[dict[str, dict[str, Any]], list[str], Mapping[str, Path]]:
    """module key (peft's current_key) -> {layer, type, A, B, scaling} (A/B tensor names), skipped names, files."""
    from peft.utils.other import get_pattern_key  # peft's own rank/alpha pattern resolution

    cfg = _lora_config(folder)
    files = _tensor_files(folder, "lora")
    pairs: dict[str, dict[str, str]] = {}
    other: list[str] = []
    for name in files:
        m = _LORA_KEY.match(name)
        if m is None:
            other.append(name)
            continue
        pairs.setdefault(m.group("module"), {})[m.group("ab")] = name
    keep, skipped = _split(list(pairs))
    skipped = sorted(other + [n for s in skipped for n in pairs[s].values()])

    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    with safe_open(str(folder / _ADAPTER_WEIGHTS), framework="pt") as fh:
        for names in pairs.values():
            for n in names.values():
                shapes[n] = tuple(fh.get_slice(n).get_shape())

    r0, alpha0 = cfg.get("r", 8), cfg.get("lora_alpha", 8)
    rank_pattern, alpha_pattern = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    out: dict[str, dict[str, Any]] = {}
    for module, (i, t) in keep.items():
        names = pairs[module]
        if set(names) != {"A", "B"}:
            have = ", ".join(names.values())
            raise WeightDiffError(f"{folder}: module {module} has only {have}; an adapter needs lora_A and lora_B")
        a_shape, b_shape = shapes[names["A"]], shapes[names["B"]]
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1]:
            raise WeightDiffError(
                f"{folder}: module {module}: lora_A {a_shape} and lora_B {b_shape} are not "
                "r×in and out×r Linear factors"
            )
        r = a_shape[0]
        key = module[len(_PEFT_PREFIX) :] if module.startswith(_PEFT_PREFIX) else module
        r_cfg = rank_pattern.get(get_pattern_key(list(rank_pattern), key), r0)
        alpha = alpha_pattern.get(get_pattern_key(list(alpha_pattern), key), alpha0)
        if int(r_cfg) != r:
            raise WeightDiffError(
                f"{folder}: module {module} has rank {r} in its tensors but {r_cfg} in "
                f"{_ADAPTER_CONFIG} (r / rank_pattern); the adapter files do not belong together"
            )
        scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        out[key] = {
            "layer": i,
            "type": t,
            "A": names["A"],
            "B": names["B"],
            "scaling": float(scaling),
            "in": a_shape[1],
            "out": b_shape[0],
        }
    return out, skipped, files


def _lora_norm(a: Mapping[str, Any], b: Mapping[str, Any], read_a: _Reader, read_b: _Reader, brute: bool) -> float:
    import torch

    A_a, B_a, A_b, B_b = read_a(a["A"]), read_a(a["B"]), read_b(b["A"]), read_b(b["B"])
    if brute:
        diff = a["scaling"] * (B_a @ A_a) - b["scaling"] * (B_b @ A_b)
        return float(torch.linalg.norm(diff))
    U = torch.cat([a["scaling"] * B_a, -b["scaling"] * B_b], dim=1)  # out × (r_a + r_b)
    V = torch.cat([A_a, A_b], dim=0)  # (r_a + r_b) × in
    sq = float(((U.T @ U) * (V @ V.T)).sum())  # trace((UᵀU)(VVᵀ)), both symmetric
    return math.sqrt(max(sq, 0.0))  # rounding can leave a tiny negative when the two updates are equal


def _lora_differences(fa: Path, fb: Path, brute: bool) -> tuple[dict[tuple[int, str], float], list[str]]:
    ma, skipped_a, files_a = _lora_modules(fa)
    mb, skipped_b, files_b = _lora_modules(fb)
    _same_modules(set(ma), set(mb), fa, fb)
    read_a, read_b = _Reader(files_a), _Reader(files_b)
    norms: dict[tuple[int, str], float] = {}
    for key in sorted(ma):
        a, b = ma[key], mb[key]
        if (a["out"], a["in"]) != (b["out"], b["in"]):
            raise WeightDiffError(
                f"module {key}: {a['out']}×{a['in']} in {fa} but {b['out']}×{b['in']} in {fb}; "
                "the two adapters are not of the same base model"
            )
        norms[(a["layer"], a["type"])] = _lora_norm(a, b, read_a, read_b, brute)
    return norms, sorted(set(skipped_a) | set(skipped_b))


def _same_modules(a: set[str], b: set[str], fa: Path, fb: Path) -> None:
    only_a, only_b = sorted(a - b), sorted(b - a)
    if only_a or only_b:
        what = []
        if only_a:
            what.append(f"only in {fa}: {', '.join(only_a[:5])}{' ...' if len(only_a) > 5 else ''}")
        if only_b:
            what.append(f"only in {fb}: {', '.join(only_b[:5])}{' ...' if len(only_b) > 5 else ''}")
        raise WeightDiffError(
            f"the two fine-tunes adapt different modules ({'; '.join(what)}); train both with the "
            "same target_modules (ranks may differ)"
        )


# --------------------------------------------------------------------------- full fine-tunes


def _full_differences(fa: Path, fb: Path) -> tuple[dict[tuple[int, str], float], list[str]]:
    import torch

    files_a, files_b = _tensor_files(fa, "full"), _tensor_files(fb, "full")
    keep_a, skipped_a = _split(list(files_a))
    keep_b, skipped_b = _split(list(files_b))
    _same_modules(set(keep_a), set(keep_b), fa, fb)
    read_a, read_b = _Reader(files_a), _Reader(files_b)
    norms: dict[tuple[int, str], float] = {}
    for name in sorted(keep_a):
        wa, wb = read_a(name), read_b(name)
        if wa.shape != wb.shape:
            raise WeightDiffError(
                f"module {name}: shape {tuple(wa.shape)} in {fa} but {tuple(wb.shape)} in {fb}; "
                "the two models are not of the same base"
            )
        cell = keep_a[name]
        if cell in norms:  # e.g. a weight and a bias of the same projection: norms add in squares
            norms[cell] = math.hypot(norms[cell], float(torch.linalg.norm(wa - wb)))
        else:
            norms[cell] = float(torch.linalg.norm(wa - wb))
    return norms, sorted(set(skipped_a) | set(skipped_b))


# --------------------------------------------------------------------------- results


def weight_differences(dir_a: str | Path, dir_b: str | Path, *, brute_force: bool = False) -> dict[str, Any]:
    """Per-module Frobenius norms of ΔW_A − ΔW_B, per-type sums and their normalisation (module docstring)."""
    fa, kind_a = _weights_folder(dir_a)
    fb, kind_b = _weights_folder(dir_b)
    if kind_a != kind_b:
        raise WeightDiffError(
            f"{fa} is a {kind_a} fine-tune but {fb} a {kind_b} one; compare like with like "
            "(merge the adapter into its base to compare it with a full fine-tune)"
        )
    norms, skipped = _lora_differences(fa, fb, brute_force) if kind_a == "lora" else _full_differences(fa, fb)
    if not norms:
        raise WeightDiffError(
            f"{fa} and {fb} hold no block projection weights ({', '.join(MODULE_TYPES)}); "
            f"nothing to compare (tensors seen: {', '.join(skipped[:5])})"
        )
    n_layers = max(i for i, _ in norms) + 1
    types = [t for t in TABLE5_COLUMNS if any(tt == t for _, tt in norms)]
    per_layer = {t: [norms.get((i, t)) for i in range(n_layers)] for t in types}
    per_type = {t: math.fsum(v for v in per_layer[t] if v is not None) for t in types}
    top = max(per_type.values())
    normalised = {t: (v / top if top > 0 else 0.0) for t, v in per_type.items()}
    return {
        "kind": kind_a,
        "n_layers": n_layers,
        "n_modules": len(norms),
        "module_types": types,
        "per_layer": per_layer,
        "per_type": per_type,
        "normalised": normalised,
        "skipped": skipped,
    }


def table_row(result: Mapping[str, Any]) -> list[float | None]:
    """``result["normalised"]`` in :data:`TABLE5_COLUMNS` order (None for a type that was not adapted)."""
    return [result["normalised"].get(t) for t in TABLE5_COLUMNS]


def heatmap(per_layer: Mapping[str, Sequence[float | None]], path: str | Path, title: str) -> Path:
    """Blocks (rows, 1 = first) × module types (columns, Table 5 order) of the norms; PNG, fixed metadata."""
    import numpy as np
    from matplotlib.figure import Figure

    types = [t for t in TABLE5_COLUMNS if t in per_layer] + sorted(set(per_layer) - set(TABLE5_COLUMNS))
    if not types:
        raise ValueError("heatmap: per_layer is empty")
    n = max(len(per_layer[t]) for t in types)
    grid = np.full((n, len(types)), np.nan)
    for j, t in enumerate(types):
        for i, v in enumerate(per_layer[t]):
            if v is not None:
                grid[i, j] = float(v)
    path = Path(path)
    with plot_style():
        fig = Figure(figsize=(1.0 + 0.8 * len(types), 1.5 + 0.22 * n), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xticks(range(len(types)), types, rotation=45, ha="right")
        step = max(1, math.ceil(n / 32))
        ax.set_yticks(range(0, n, step), [str(i + 1) for i in range(0, n, step)])
        ax.set_ylabel("block")
        ax.set_title(title, fontsize="medium")
        fig.colorbar(im, ax=ax, label="‖ΔW_A − ΔW_B‖_F")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    with atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path
