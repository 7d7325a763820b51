"""Backend registry: ``annotate.teachers[i].backend`` -> the adapter class (imported lazily)."""

from __future__ import annotations

import importlib

from ...config.annotate import BACKENDS
from ...errors import ConfigError
from ..base import Backend, TeacherConfig

_CLASSES = {
    "heuristic": ("heuristic", "HeuristicBackend"),
    "openai": ("openai_compat", "OpenAICompatBackend"),
    "bedrock": ("bedrock", "BedrockBackend"),
    "transformers": ("transformers_local", "TransformersBackend"),
}
assert set(_CLASSES) == set(BACKENDS)


def make_backend(teacher: TeacherConfig) -> Backend:
    """Build the backend for one teacher; its constructor validates the teacher's options."""
    try:
        module, cls = _CLASSES[teacher.backend]
    except KeyError:
        raise ConfigError(
            f"annotate.teachers[{teacher.name}].backend",
            f"unknown backend {teacher.backend!r}; known: {', '.join(BACKENDS)}",
        ) from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(teacher)
