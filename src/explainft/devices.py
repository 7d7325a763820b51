"""Which device a model runs on: the one resolution every loader uses (students, raters, the logit lens)."""

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
