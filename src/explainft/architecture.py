"""Where a causal LM keeps its parts: the one module that knows module names.

Like tuned-lens's ``model_surgery.py``: analyses that must reach inside a
model (the logit lens needs the decoder blocks, the final norm and the LM
head; the LoRA weight comparison needs to read projection names) ask here,
so supporting a new family means adding one row to :data:`FAMILIES`.

Functions
---------
``unwrap(model) -> model``
    Strips the wrappers training puts around a transformers model: DDP and
    ``DataParallel`` (``.module``), ``torch.compile`` (``._orig_mod``), peft
    (``PeftModel`` → its base model, ``LoraModel``/any ``BaseTuner`` →
    ``.model``), in any nesting.
``model_parts(model) -> Parts(body, layers, final_norm, lm_head, family)``
    For the families in :data:`FAMILIES` (``mistral``: Mistral-7B and the
    project's tiny student; ``llama``: Llama and SmolLM2), found by
    ``config.model_type`` after :func:`unwrap`. The modules are the live ones
    (a LoRA-wrapped projection stays wrapped), so hooks and calls on them see
    the adapters. Any other model is an :class:`ArchitectureError` naming its
    class and model type and listing the known families.
``module_type(name) -> str | None``
    The projection (one of :data:`MODULE_TYPES`) a parameter or module name
    refers to: ``base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight``
    → ``"q_proj"``; ``model.norm.weight`` → ``None``.
``layer_index(name) -> int | None``
    The decoder-block index in such a name (``model.layers.3.mlp.up_proj.weight``
    → 3), ``None`` outside the blocks (embeddings, final norm, head).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ExplainftError

# The seven projections of a Llama/Mistral block, attention then MLP (explainft.config.train.PROJECTIONS names the same set:
# the ones the paper adapts with LoRA).
MODULE_TYPES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class _Layout:
    """Attribute paths (dotted, from the unwrapped ``*ForCausalLM``) of one family's parts."""

    body: str
    layers: str
    final_norm: str
    lm_head: str
    layer_container: str  # the ModuleList's attribute name, as it appears in parameter names


_LLAMA_LIKE = _Layout(
    body="model", layers="model.layers", final_norm="model.norm", lm_head="lm_head", layer_container="layers"
)

# config.model_type -> layout. Llama and Mistral share module names (SmolLM2 is a Llama).
FAMILIES: dict[str, _Layout] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
}

_LAYER_RE = re.compile(
    r"(?:^|\.)(?:%s)\.(\d+)(?=\.|$)" % "|".join(sorted({re.escape(f.layer_container) for f in FAMILIES.values()}))
)


class ArchitectureError(ExplainftError, ValueError):
    """A model whose parts this project does not know how to find (names the class and the known families)."""


@dataclass(frozen=True)
class Parts:
    """The parts of a decoder-only LM that a logit lens needs (live modules of the model passed in)."""

    body: Any  # the decoder stack (embeddings, blocks, final norm): ``model.model``
    layers: Any  # torch.nn.ModuleList of the transformer blocks, first to last
    final_norm: Any  # the norm applied after the last block, before the head
    lm_head: Any  # the output embedding (hidden -> vocabulary logits)
    family: str  # a key of FAMILIES

    @property
    def n_layers(self) -> int:
        return len(self.layers)


def unwrap(model: Any) -> Any:
    """``model`` without DDP/DataParallel, torch.compile and peft wrappers (see the module docstring)."""
    import torch

    parallel = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    try:
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTuner
    except ImportError:  # pragma: no cover - peft is a dependency, but the lookups work without it
        PeftModel = BaseTuner = ()  # type: ignore[assignment,misc]
    m = model
    for _ in range(16):  # wrappers nest a few levels at most; the bound only guards against a cycle
        if isinstance(m, parallel):
            m = m.module
        elif hasattr(m, "_orig_mod") and type(m).__name__ == "OptimizedModule":
            m = m._orig_mod
        elif PeftModel and isinstance(m, PeftModel):
            m = m.get_base_model()
        elif BaseTuner and isinstance(m, BaseTuner):
            m = m.model
        else:
            return m
    raise ArchitectureError(f"{type(model).__name__}: more than 16 nested wrappers; cannot find the model inside")


def _get(root: Any, path: str, what: str, cls: str) -> Any:
    obj = root
    for attr in path.split("."):
        if not hasattr(obj, attr):
            raise ArchitectureError(
                f"{cls}: no {what} at .{path} (missing attribute {attr!r}); the model does not "
                "have its family's usual layout"
            )
        obj = getattr(obj, attr)
    return obj


def family_of(model: Any) -> str:
    """The :data:`FAMILIES` key of ``model`` (after :func:`unwrap`), else an :class:`ArchitectureError`."""
    m = unwrap(model)
    model_type = getattr(getattr(m, "config", None), "model_type", None)
    if model_type not in FAMILIES:
        raise ArchitectureError(
            f"{type(m).__name__} (model_type {model_type!r}) is not a known model family; known: "
            f"{', '.join(sorted(FAMILIES))}. Add its module names to explainft.architecture.FAMILIES"
        )
    return model_type


def model_parts(model: Any) -> Parts:
    """Body, blocks, final norm and LM head of ``model`` (any wrapper removed); see the module docstring."""
    import torch

    family = family_of(model)
    m = unwrap(model)
    layout = FAMILIES[family]
    cls = type(m).__name__
    layers = _get(m, layout.layers, "decoder blocks", cls)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        raise ArchitectureError(f"{cls}: .{layout.layers} is not a non-empty ModuleList of decoder blocks")
    return Parts(
        body=_get(m, layout.body, "decoder body", cls),
        layers=layers,
        final_norm=_get(m, layout.final_norm, "final norm", cls),
        lm_head=_get(m, layout.lm_head, "LM head", cls),
        family=family,
    )


def module_type(name: str) -> str | None:
    """The projection type named in a parameter/module name (first dotted component in MODULE_TYPES), or None."""
    for part in name.split("."):
        if part in MODULE_TYPES:
            return part
    return None


def layer_index(name: str) -> int | None:
    """The decoder-block index in a parameter/module name (``...layers.<i>....``), or None outside the blocks."""
    m = _LAYER_RE.search(name)
    return int(m.group(1)) if m else None
