"""Which device a model runs on, and in which floating-point type it computes there: the one resolution every
loader uses (students, raters, the logit lens, training's mixed precision)."""

from __future__ import annotations

import os

from .errors import ConfigError


def resolve_device(device: str, *, key: str = "train.device") -> str:
    """``auto``: this process's GPU when CUDA is available, else ``cpu``; ``cuda``: this process's GPU, i.e.
    ``cuda:<LOCAL_RANK>`` (0 outside a distributed launch, so each DDP process takes its own GPU); ``cuda:N``
    and ``cpu`` as given. Asking for CUDA without it is a ConfigError naming ``key``."""
    import torch  # heavy: only when a model is loaded

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(key, f"{device!r} asked for but CUDA is not available; use auto or cpu")
        if device == "cuda":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return device


# the compute dtypes compute_dtype chooses among (torch's names)
COMPUTE_DTYPES = ("bfloat16", "float16", "float32")


def compute_dtype(device: str) -> str:
    """The floating-point type a model computes in on ``device`` (a resolved one: ``cpu`` or ``cuda:N``).

    ``bfloat16`` on a GPU that has it natively (CUDA compute capability 8.0 and up: A100, H100, RTX 30xx/40xx;
    ROCm), ``float16`` on an older GPU (V100, T4: bf16 there is emulated, slowly, or missing), ``float32`` on
    the CPU. Full fine-tuning keeps fp32 weights and runs under autocast in this type (with loss scaling for
    float16); LoRA keeps the frozen base in it; NF4 dequantises to it (``bnb_4bit_compute_dtype``)."""
    if not device.startswith("cuda"):
        return "float32"
    import torch  # heavy: only when a model is loaded

    if torch.version.hip:  # every ROCm GPU torch supports computes in bf16
        return "bfloat16"
    major, _minor = torch.cuda.get_device_capability(device)
    return "bfloat16" if major >= 8 else "float16"
