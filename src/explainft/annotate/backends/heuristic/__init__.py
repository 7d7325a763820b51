"""An offline, deterministic teacher: rates a response from measured text evidence.

It stands in for the teacher LLMs in the embedded default profile and in
tests. It never reads the prompt text: it reads the structured
:class:`~explainft.annotate.base.Request` (conversation, dimension, prompt
variant and scale), measures evidence on the conversation, and returns the
text an LLM teacher would reply, one JSON object::

    {"score": <int 1..scale>, "assessment": "<1-3 sentences citing evidence>",
     "confidence": "<how sure, and why>"}

It cannot answer free-form prompts (the merge stage's judge and summariser):
``acomplete(messages, request=None)`` raises :class:`BackendError`. It never
reads ``conversation.meta`` (where the demo corpus records its perturbations),
so it cannot peek at the answer.

A rating goes evidence -> quality -> score, assessment and confidence. The
specification is in the docstrings of the modules it describes, one idea each:

* :mod:`.text` - tokens, stop words, stemming, when two stems match;
* :mod:`.phrases` - instructions aimed at the rater, stock and vague phrases, and the response's ``core``;
* :mod:`.evidence` - what is measured on a conversation (teacher-independent, cached);
* :mod:`.dimensions` - each dimension's quality formula, evidence strength and notes;
* :mod:`.scale` - from quality to a score, with the deterministic jitter;
* :mod:`.wording` - how the assessment and the confidence are worded;
* :mod:`.profiles` - the options (``annotate.teachers[i].options``) and profiles;
* :mod:`.embedder` - the batching sentence embedder behind the ``embedding`` option.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable

from ....config.annotate import PROMPT_VARIANTS
from ....records import Conversation
from ...base import Backend, BackendError, Request, TeacherConfig
from .dimensions import comprehensiveness, naturalness, on_topic, relevance
from .embedder import Embedder, default_model_path, shared_embedder
from .evidence import Evidence, analyse, analyse_key
from .profiles import PROFILES, HeuristicOptions
from .scale import position, score_at
from .wording import word_assessment, word_confidence

__all__ = [
    "CONCURRENCY",
    "EMBEDDING_DIMENSIONS",
    "PROFILES",
    "Embedder",
    "Evidence",
    "HeuristicBackend",
    "HeuristicOptions",
    "Judgement",
    "analyse",
    "analyse_key",
    "default_model_path",
    "position",
    "score_at",
    "shared_embedder",
]

EMBEDDING_DIMENSIONS = ("on_topic", "comprehensiveness")  # comprehensiveness is gated by relevance
CONCURRENCY = 4096  # lets the engine hand over a whole chunk, so embedding requests batch up


@dataclass(frozen=True)
class Judgement:
    """One rating, and the JSON reply an LLM teacher would give for it."""

    score: int
    q: float  # quality before mapping
    x: float  # mapped position on [0, 1]
    assessment: str
    confidence: str
    confidence_level: str

    def reply(self) -> str:
        return json.dumps(
            {"score": self.score, "assessment": self.assessment, "confidence": self.confidence}, ensure_ascii=False
        )


class HeuristicBackend(Backend):
    """Offline deterministic teacher (the package docstring maps where evidence, formulas and options are)."""

    kind: ClassVar[str] = "heuristic"
    cacheable: ClassVar[bool] = False

    def __init__(self, teacher: TeacherConfig):
        super().__init__(teacher)
        self.options = HeuristicOptions.from_teacher(teacher)
        self.weights = PROFILES[self.options.profile]
        self.concurrency = CONCURRENCY
        self._model_path = self.options.model_path  # resolved lazily: construction must stay cheap

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        o = self.options
        ident["options"] = {
            "profile": o.profile,
            "embedding": o.embedding,
            "strictness": o.strictness,
            "noise": o.noise,
            "model_path": o.model_path,
        }
        return ident

    # -- embeddings ----------------------------------------------------------------

    def _emb(self) -> Embedder:
        if self._model_path is None:
            self._model_path = default_model_path()
        return shared_embedder(self._model_path, self.options.batch_size)

    @staticmethod
    def _emb_texts(ev: Evidence) -> tuple[str, str, str]:
        return ev.request, ev.history, ev.core

    def prefetch(self, conversations: Iterable[Conversation]) -> None:
        """Embed every text the on-topic and comprehensiveness ratings of ``conversations`` need, in large batches."""
        if not self.options.embedding:
            return
        texts = []
        for c in conversations:
            texts.extend(t for t in self._emb_texts(analyse(c)) if t)
        self._emb().ensure(texts)

    def _embedding_sim(self, ev: Evidence) -> float:
        emb = self._emb()
        sim = emb.cosine(ev.request, ev.core)
        if ev.history:
            sim = max(sim, round(0.9 * emb.cosine(ev.history, ev.core), 3))
        return sim

    # -- the interface ---------------------------------------------------------------

    async def acomplete(self, messages: list[dict[str, str]], request: Request | None = None) -> str:
        if request is None:
            raise BackendError(
                "the heuristic backend rates structured requests only; it cannot answer free-form "
                "prompts (use an LLM teacher as merge judge or summariser)"
            )
        self._check(request)
        sim = None
        if self.options.embedding and request.dimension in EMBEDDING_DIMENSIONS:
            ev = analyse(request.conversation)
            await self._emb().aensure(self._emb_texts(ev))
            sim = self._embedding_sim(ev)
        return self.judge(request, embedding_sim=sim).reply()

    def complete(self, request: Request) -> str:
        """Synchronous :meth:`acomplete` (tests, benchmarks)."""
        self._check(request)
        return self.judge(request).reply()

    def _check(self, request: Request) -> None:
        p = request.prompt
        if p.variant not in PROMPT_VARIANTS:
            raise BackendError(f"unknown prompt variant {p.variant!r}; known: {', '.join(PROMPT_VARIANTS)}")
        if p.scale not in (4, 5):
            raise BackendError(f"prompt scale must be 4 or 5, got {p.scale!r}")

    # -- rating ----------------------------------------------------------------------

    def judge(self, request: Request, embedding_sim: float | None = None) -> Judgement:
        """Rate one request: evidence -> quality -> score, assessment and confidence."""
        ev = analyse(request.conversation)
        dim = request.dimension
        w = self.weights
        if dim in EMBEDDING_DIMENSIONS and self.options.embedding and embedding_sim is None:
            embedding_sim = self._embedding_sim(ev)
        if dim == "naturalness":
            q, strength, notes = naturalness(ev, w)
        elif dim == "comprehensiveness":
            q, strength, notes = comprehensiveness(ev, w, relevance(ev, w, embedding_sim))
        else:
            q, strength, notes = on_topic(ev, w, embedding_sim)
        scale = request.prompt.scale
        h = self._hash(request, request.prompt.variant)
        # jitter: this teacher's standing opinion of the item (shared by its four prompts) + per-prompt wobble
        jitter = self.options.noise * (1.5 * (2 * self._hash(request, "") - 1) + 0.5 * (2 * h - 1))
        x = position(q, request.prompt.variant, self.options.strictness, jitter)
        score = score_at(x, scale)
        assessment = word_assessment(notes, h)
        embedded = embedding_sim is not None and ev.n_core > 0
        level, confidence = word_confidence(ev, x, scale, score, strength, dim, embedded, h)
        return Judgement(score=score, q=q, x=x, assessment=assessment, confidence=confidence, confidence_level=level)

    def _hash(self, request: Request, variant: str) -> float:
        """Uniform [0, 1) from sha256(teacher name, item id, dimension, variant): deterministic, no global RNG."""
        blob = f"{self.teacher.name}\x1f{request.item_id}\x1f{request.dimension}\x1f{variant}"
        return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:8], "big") / 2.0**64
