"""Logit lens at the score position: entropy and output-token rank after each block (Table 6, appendices A.5-A.6).

The paper (with Ecco) decodes the residual stream after every transformer
block through the model's final norm and LM head and finds that
explanation-trained students keep a flatter distribution (higher entropy)
through the late blocks and commit more sharply at the very end.

:func:`logit_lens` reads each example where scoring reads it, with the
prefixes scoring builds (:func:`explainft.scoring.score_prefixes`): in layout
"after" the example encoded with the score-only target
(``encode_example(ex.with_target("none", ""), max_length)``), in layout
"before" (``position="before"``) the prompt, the model's own greedy rationale
and ``"\\nScore:"``, encoded as training encodes it. The model reads
``input_ids[:score_index]`` and the distribution at the last prefix position
is the one that predicts the score digit. Each batch (sorted longest first,
right-padded with an attention mask) takes ONE forward pass: forward hooks on
the decoder blocks (:func:`explainft.architecture.model_parts`) keep each
block's raw output at each row's score position only (rows × hidden per
block), and the model's own logits are requested at exactly those positions
(``logits_to_keep`` as a rows × 1 position tensor), so no batch × length ×
vocabulary tensor is made. For block ``i`` (1-based) the lens is
``softmax(lm_head(final_norm(h_i)))``. The raw outputs are captured with hooks
rather than read from ``output_hidden_states`` because transformers 5 returns
the LAST entry of ``hidden_states`` already final-normalised (the others raw):
normalising it again would distort the last block. The last block's lens is
checked against the model's own logits on every row (a family with a final
soft-cap or a head that reads something else fails with :class:`LensError`),
to the tolerance of the head's compute dtype (fp32: 1e-3 of the logits' scale;
bf16/fp16: 3e-2, since the lens and the model may run different half-precision
kernels for the same product).

Per block: the entropy in nats of the lens distribution, and the rank of the
model's final predicted token (the argmax of its own output logits at the
score position) in it: the number of tokens with a strictly larger logit
(rank 0 = top). At the last block the entropy is that of the model's output
distribution and the rank of its argmax is 0 (up to float ties).

Table 6's columns (``paper/table6_entropy_differences.csv``) are, for 32
blocks: ``blocks_1_20`` (mean), ``blocks_21_25`` (mean), then ``block_26`` ..
``block_32`` one by one. :func:`group_blocks` scales that layout to depth
``L``: the last ``n_late = max(1, round(L·7/32))`` blocks (rounding halves
up) stay single; the ``E = L − n_late`` earlier blocks form two averaged
groups in the paper's 20:5 proportion, the first of ``round(E·20/25)``
blocks, the second of the rest; an empty group is dropped, and a group of
one block is labelled ``block_i``. So 32 blocks give exactly the paper's
header; 30 (SmolLM2-135M): ``blocks_1_18, blocks_19_23, block_24 .. block_30``;
3 (the tiny student): ``blocks_1_2, block_3``; 2: ``block_1, block_2``; 1:
``block_1``. An explicit ``n_late`` (1..L) overrides the late count.

Functions
---------
``logit_lens(model, tokenizer, examples, *, max_length, batch_size=16, position="after", generate_tokens=128)
-> LensResult``
``group_blocks(values, n_late=None) -> (labels, grouped)`` (blocks on the last axis)
``entropy_difference(lens_a, lens_b, *, n_late=None) -> dict`` (A minus B, and normalised)
``rank_heatmap(result, path, title) -> Path`` (PNG, blocks × examples, byte-identical)

Heavy imports (torch, matplotlib) happen inside the functions.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..architecture import model_parts
from ..encode import pad_id_for
from ..errors import ExplainftError
from ..fsutil import atomic_open
from ..records import Example
from ..scoring import GENERATE_TOKENS, score_prefixes
from .explanation_stats import plot_style

__all__ = [
    "PAPER_BLOCKS",
    "PAPER_GROUPS",
    "PAPER_N_LATE",
    "LensError",
    "LensResult",
    "entropy_difference",
    "group_blocks",
    "logit_lens",
    "rank_heatmap",
]

# Table 6's layout at the paper's depth: two averaged early groups (1-20, 21-25), then 26..32 one by one.
PAPER_BLOCKS = 32
PAPER_GROUPS: tuple[tuple[int, int], ...] = ((1, 20), (21, 25))
PAPER_N_LATE = 7


class LensError(ExplainftError, ValueError):
    """The logit lens cannot be applied as asked (names the model class, the example or the setting)."""


@dataclass(frozen=True)
class LensResult:
    """Per-example, per-block lens statistics (rows in the order of the examples passed in)."""

    ids: tuple[str, ...]
    entropies: np.ndarray  # n_examples × n_blocks, float64, nats
    ranks: np.ndarray  # n_examples × n_blocks, int64, rank of the predicted token (0 = top)
    predicted: np.ndarray  # n_examples, int64: argmax of the model's own output logits at the score position
    n_tokens: np.ndarray  # n_examples, int64: prefix length read

    @property
    def n_blocks(self) -> int:
        return int(self.entropies.shape[1])

    @property
    def entropy(self) -> np.ndarray:
        """Mean entropy (nats) over examples, per block."""
        return self.entropies.mean(axis=0)

    @property
    def mean_rank(self) -> np.ndarray:
        """Mean rank of the predicted token over examples, per block."""
        return self.ranks.mean(axis=0)

    def to_dict(self) -> dict[str, Any]:
        """The per-block means (for a metrics file): ``{n_examples, n_blocks, entropy, mean_rank}``."""
        return {
            "n_examples": len(self.ids),
            "n_blocks": self.n_blocks,
            "entropy": [float(x) for x in self.entropy],
            "mean_rank": [float(x) for x in self.mean_rank],
        }


# --------------------------------------------------------------------------- the lens


def _close(a: Any, b: Any, dtype: Any) -> bool:
    """Whether lens logits reproduce the model's (rows × vocab), computed in ``dtype`` (the head's): fp32/fp64
    to 1e-3 of their scale, half precision to 3e-2, whatever the tensors were cast to since."""
    import torch

    rel = 1e-3 if dtype in (torch.float32, torch.float64) else 3e-2
    a, b = a.float(), b.float()
    scale = max(1.0, float(b.abs().max()))
    return bool(torch.isfinite(a).all()) and float((a - b).abs().max()) <= rel * scale


def _stats(logits: Any, target: Any) -> tuple[Any, Any]:
    """(entropy in nats, rank of ``target``) per row of ``logits`` (rows × vocab)."""
    import torch

    lp = torch.log_softmax(logits.double(), dim=-1)
    entropy = -(lp.exp() * lp).sum(dim=-1)
    z = logits.float()
    rank = (z > z.gather(1, target[:, None])).sum(dim=-1)
    return entropy, rank


def _compute_dtype(module: Any) -> Any:
    """The dtype a module computes in: that of its first floating-point parameter (float32 if it has none)."""
    import torch

    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def logit_lens(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    max_length: int,
    batch_size: int = 16,
    position: str = "after",
    generate_tokens: int = GENERATE_TOKENS,
) -> LensResult:
    """Entropy and predicted-token rank after each block at each example's score position (module docstring).

    ``position`` is the layout the model was trained on (``train.explanation_position``); in layout "before" the
    prefixes hold the model's own rationale (``generate_tokens`` new tokens at most), as scoring reads them.
    """
    import torch

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    examples = list(examples)
    if not examples:
        raise LensError("no examples: nothing to read the lens on")
    parts = model_parts(model)
    n_blocks = parts.n_layers
    prefixes, _ = score_prefixes(
        model,
        tokenizer,
        examples,
        max_length=max_length,
        batch_size=batch_size,
        position=position,
        generate_tokens=generate_tokens,
    )
    rows = [p.encoded.input_ids[: p.encoded.score_index] for p in prefixes]
    pad_id = pad_id_for(tokenizer)
    try:
        device = next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        device = torch.device("cpu")

    head_device = next(iter(parts.final_norm.parameters()), None)
    head_device = head_device.device if head_device is not None else device
    head_dtype = _compute_dtype(parts.lm_head)  # the tolerance of the last block's check
    n = len(rows)
    entropies = np.zeros((n, n_blocks), dtype=np.float64)
    ranks = np.zeros((n, n_blocks), dtype=np.int64)
    predicted = np.zeros(n, dtype=np.int64)
    order = sorted(range(n), key=lambda i: (-len(rows[i]), i))

    captured: dict[int, Any] = {}
    where: dict[str, Any] = {}

    def hook_for(index: int):
        def hook(module: Any, args: Any, output: Any) -> None:
            h = output[0] if isinstance(output, (tuple, list)) else output
            captured[index] = h[where["rows"].to(h.device), where["last"].to(h.device)].detach()

        return hook

    handles = [layer.register_forward_hook(hook_for(i)) for i, layer in enumerate(parts.layers)]
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                batch = order[start : start + batch_size]
                lengths = [len(rows[i]) for i in batch]
                width = max(lengths)
                input_ids = torch.tensor(
                    [rows[i] + [pad_id] * (width - len(rows[i])) for i in batch], dtype=torch.long, device=device
                )
                mask = torch.tensor([[1] * k + [0] * (width - k) for k in lengths], dtype=torch.long, device=device)
                last = torch.tensor(lengths, dtype=torch.long, device=device) - 1
                where["rows"], where["last"] = torch.arange(len(batch), device=device), last
                captured.clear()
                out = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=last[:, None], use_cache=False)
                if len(captured) != n_blocks:
                    raise LensError(
                        f"{type(parts.body).__name__}: {len(captured)} of {n_blocks} decoder blocks "
                        "ran in the forward pass; cannot read every block"
                    )
                own = out.logits
                if tuple(own.shape[:2]) != (len(batch), 1):
                    raise LensError(
                        f"the model returned logits of shape {tuple(own.shape)} for logits_to_keep of "
                        f"shape ({len(batch)}, 1); a transformers version that keeps per-row positions "
                        "(5.x) is needed"
                    )
                own = own[:, 0].float()
                target = own.argmax(dim=-1)
                for b in range(n_blocks):  # (blocks may sit on different devices under a device_map)
                    logits = parts.lm_head(parts.final_norm(captured[b].to(head_device))).float().to(own.device)
                    if b == n_blocks - 1 and not _close(logits, own, head_dtype):
                        raise LensError(
                            f"{type(parts.body).__name__}: lm_head(final_norm(last block output)) does not reproduce "
                            "the model's own logits (a final soft-cap or a different head input?); the logit lens "
                            "as defined here does not apply to this model"
                        )
                    ent, rk = _stats(logits, target)
                    entropies[batch, b] = ent.cpu().numpy()
                    ranks[batch, b] = rk.cpu().numpy()
                predicted[batch] = target.cpu().numpy()
    finally:
        for h in handles:
            h.remove()
        if was_training:
            model.train()
    return LensResult(
        ids=tuple(ex.id for ex in examples),
        entropies=entropies,
        ranks=ranks,
        predicted=predicted,
        n_tokens=np.array([len(r) for r in rows], dtype=np.int64),
    )


# --------------------------------------------------------------------------- grouping and differences


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _layout(n_blocks: int, n_late: int | None) -> list[tuple[int, int]]:
    """1-based inclusive (first, last) block ranges, early groups first (see the module docstring)."""
    if n_blocks < 1:
        raise ValueError(f"need at least one block, got {n_blocks}")
    if n_late is None:
        n_late = max(1, _round_half_up(n_blocks * PAPER_N_LATE / PAPER_BLOCKS))
    if not (isinstance(n_late, int) and 1 <= n_late <= n_blocks):
        raise ValueError(f"n_late must be an integer in 1..{n_blocks}, got {n_late!r}")
    early = n_blocks - n_late
    (a0, a1), (b0, b1) = PAPER_GROUPS
    first = _round_half_up(early * (a1 - a0 + 1) / (b1 - a0 + 1))
    groups = [(1, first), (first + 1, early)] + [(i, i) for i in range(early + 1, n_blocks + 1)]
    return [(lo, hi) for lo, hi in groups if lo <= hi]


def _label(lo: int, hi: int) -> str:
    return f"block_{lo}" if lo == hi else f"blocks_{lo}_{hi}"


def group_blocks(values: Any, n_late: int | None = None) -> tuple[list[str], np.ndarray]:
    """(labels, values averaged over each group of blocks) for per-block ``values`` (blocks on the last axis)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError("group_blocks: values must have a blocks axis (the last)")
    groups = _layout(arr.shape[-1], n_late)
    grouped = np.stack([arr[..., lo - 1 : hi].mean(axis=-1) for lo, hi in groups], axis=-1)
    return [_label(lo, hi) for lo, hi in groups], grouped


def _normalise(x: np.ndarray) -> np.ndarray:
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return x / top if top > 0 else np.zeros_like(x)


def entropy_difference(lens_a: LensResult, lens_b: LensResult, *, n_late: int | None = None) -> dict[str, Any]:
    """Mean entropy of A (explanation-trained) minus B (score-only), per block and in Table 6's groups.

    Table 6 normalises each row by its largest magnitude (every row's maximum
    is 1.00 and its negatives are small, so max |x| = 1): ``normalised`` here
    divides by the largest |difference| (all zeros when A and B agree). The
    grouped row is normalised on its own, as the paper's table row is.
    Returns ``{"per_block", "per_block_normalised", "labels", "grouped", "grouped_normalised"}`` (lists).
    """
    if lens_a.n_blocks != lens_b.n_blocks:
        raise LensError(
            f"the two models have {lens_a.n_blocks} and {lens_b.n_blocks} blocks; compare students of the same base"
        )
    if lens_a.ids != lens_b.ids:
        raise LensError(
            "the two lens results are over different examples (or in a different order); read both "
            "models on the same examples"
        )
    diff = lens_a.entropy - lens_b.entropy
    labels, grouped = group_blocks(diff, n_late)
    return {
        "per_block": diff.tolist(),
        "per_block_normalised": _normalise(diff).tolist(),
        "labels": labels,
        "grouped": grouped.tolist(),
        "grouped_normalised": _normalise(grouped).tolist(),
    }


# --------------------------------------------------------------------------- figure


def rank_heatmap(result: LensResult, path: str | Path, title: str) -> Path:
    """Blocks (rows, 1 = first) × examples (columns, input order) of log10(1 + rank); PNG, fixed metadata."""
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    grid = np.log10(1.0 + result.ranks.T.astype(np.float64))  # blocks × examples
    n_blocks, n_ex = grid.shape
    path = Path(path)
    with plot_style():
        fig = Figure(figsize=(min(12.0, 2.5 + 0.12 * n_ex), 1.5 + 0.22 * n_blocks), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(
            grid,
            aspect="auto",
            cmap="magma_r",
            interpolation="nearest",
            norm=Normalize(vmin=0.0, vmax=max(1.0, float(grid.max()))),
        )
        step = max(1, math.ceil(n_blocks / 32))
        ax.set_yticks(range(0, n_blocks, step), [str(i + 1) for i in range(0, n_blocks, step)])
        ax.set_ylabel("block")
        ax.set_xlabel(f"example ({n_ex})")
        ax.set_title(title, fontsize="medium")
        fig.colorbar(im, ax=ax, label="log10(1 + rank of the output token)")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    with atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())
    return path
