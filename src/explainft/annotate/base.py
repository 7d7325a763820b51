"""Shared types of the annotate stage: teacher config, prompts, requests, the backend interface.

Flow: for every conversation × dimension × teacher × prompt variant the engine
builds a :class:`Request` (``prompts.build_prompt`` renders the
:class:`Prompt`), looks its cache key up in the response cache, sends the
misses to the teacher's :class:`Backend`, parses each reply with
``parse.parse_rating`` and writes one ``Rating`` record.

Backends are small adapters behind one interface. Each one turns chat
``messages`` into the text of the model's reply; retries of transport errors
(429, 5xx, timeouts) live inside the backend (the ``openai`` client does them
itself), while retries of *unparsable* replies are the engine's (a new request
with ``attempt`` + 1 and a corrective follow-up message).
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from ..config.annotate import TeacherConfig
from ..errors import ConfigError, ExplainftError
from ..records import DIMENSIONS, Conversation


class BackendError(ExplainftError):
    """A request failed after the backend's own retries; the rating is recorded as ``failed``.

    ``message`` must never contain a credential.
    """


class PreflightError(ExplainftError):
    """A teacher cannot be used at all: no credentials, endpoint unreachable, model not served.

    Raised by :meth:`Backend.apreflight` before the teacher's first request, so the
    stage stops with one message naming the teacher and the cause instead of
    recording every rating as ``failed``. Never a subclass of :class:`BackendError`
    (the engine turns those into ratings). ``message`` must never contain a credential.
    """


# --------------------------------------------------------------------------- teacher config

# --------------------------------------------------------------------------- prompts and requests


@dataclass(frozen=True)
class Prompt:
    """A rendered rating prompt: system text (rubric, output contract) and user text (the fenced conversation)."""

    dimension: str
    variant: str
    scale: int
    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class Request:
    """One rating request: item × dimension × teacher × prompt variant, at a given parse attempt."""

    conversation: Conversation
    dimension: str
    teacher: str
    prompt: Prompt
    attempt: int = 0
    # on a retry after an unparsable reply: the reply and a corrective user message, appended to the chat
    followup: tuple[dict[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.dimension not in DIMENSIONS:
            raise ConfigError(
                "annotate.dimensions", f"unknown dimension {self.dimension!r}; known: {', '.join(DIMENSIONS)}"
            )

    @property
    def item_id(self) -> str:
        return self.conversation.id

    def messages(self) -> list[dict[str, str]]:
        return self.prompt.messages() + list(self.followup)


def cache_key(identity: dict[str, Any], messages: list[dict[str, str]], attempt: int) -> str:
    """The response-cache key: sha256 of the backend identity (backend, model, sampling), full chat and attempt.

    ``identity`` must not hold credentials (see :meth:`Backend.identity`).
    """
    blob = json.dumps(
        {"identity": identity, "messages": messages, "attempt": attempt},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The chat with its system message(s) folded into the first user message.

    For chat formats without a system role. System texts are joined by a blank line
    and put before the first user message's text; without a leading user message,
    they become a user message of their own at the start. Other messages are
    unchanged, so user/assistant alternation is kept.
    """
    system = [m["content"] for m in messages if m.get("role") == "system"]
    if not system:
        return list(messages)
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    text = "\n\n".join(system)
    if rest and rest[0].get("role") == "user":
        rest[0]["content"] = f"{text}\n\n{rest[0]['content']}"
    else:
        rest.insert(0, {"role": "user", "content": text})
    return rest


# --------------------------------------------------------------------------- backend interface


class Backend(abc.ABC):
    """A teacher model behind one interface: chat ``messages`` in, the reply's text out.

    ``concurrency`` bounds the engine's in-flight :meth:`acomplete` calls for this
    teacher. ``cacheable = False`` marks backends whose answer is cheaper to
    recompute than to look up (the heuristic).
    """

    kind: ClassVar[str]
    cacheable: ClassVar[bool] = True

    def __init__(self, teacher: TeacherConfig):
        self.teacher = teacher
        self.concurrency = 1

    def identity(self) -> dict[str, Any]:
        """What makes an answer reproducible: backend kind, model and sampling. Never a secret."""
        return {
            "backend": self.kind,
            "model": self.teacher.model,
            "sampling": dict(sorted(self.teacher.sampling.items())),
        }

    async def apreflight(self) -> None:
        """Check once, before the first request, that this teacher can answer at all; raise PreflightError if not.

        The engine calls it right before the teacher's first cache miss, so a rerun
        whose replies are all cached needs no credentials and no server. Backends
        that need nothing checked (local models, the heuristic) keep this no-op.
        """

    @abc.abstractmethod
    async def acomplete(self, messages: list[dict[str, str]], request: Request | None = None) -> str:
        """The text of the model's reply to ``messages``; raises BackendError after the backend's own retries.

        ``request`` carries the structured item (conversation, dimension, prompt) for
        backends that rate without reading the prompt (the heuristic); it is None for
        free-form calls such as the merge stage's judge and summariser.
        """

    async def aclose(self) -> None:
        """Release connections or models."""


class BatchBackend(Backend):
    """A local model that generates a whole batch at once (``batch_size`` chats per call).

    The engine sends it lists of misses through :meth:`complete_batch`;
    :meth:`acomplete` runs a batch of one in a worker thread.
    """

    batch_size: int = 8

    @abc.abstractmethod
    def complete_batch(self, batch: list[tuple[list[dict[str, str]], Request | None]]) -> list[str | BackendError]:
        """Replies for a batch of chats, in order; a failed one is a BackendError in its place."""

    async def acomplete(self, messages: list[dict[str, str]], request: Request | None = None) -> str:
        import asyncio

        (out,) = await asyncio.to_thread(self.complete_batch, [(messages, request)])
        if isinstance(out, BackendError):
            raise out
        return out
