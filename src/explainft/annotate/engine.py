"""The annotate engine: conversations × dimensions × teachers × prompts -> Rating records.

For each request the engine

1. renders the prompt (``prompts.build_prompt``; one per conversation,
   dimension and variant, shared by the teachers),
2. looks the reply up in the response cache (key: backend identity, full chat,
   attempt) and otherwise sends it to the teacher's backend, at most
   ``backend.concurrency`` requests in flight per teacher; a
   :class:`~.base.BatchBackend` gets the misses of a first attempt in batches,
3. parses the reply (``parse.parse_rating``, strict JSON then a tolerant
   fallback that cannot match the prompt's own rubric),
4. on an unparsable reply asks again, up to ``max_parse_retries`` times, with
   the reply and a corrective message appended (a new request: attempt + 1),
   then records ``status: unparsable`` with a null score,
5. on a transport failure that the backend's own retries could not overcome
   records ``status: failed`` with the cause (not cached: a rerun retries it).

Records come out in a fixed order (conversation order, then dimension,
teacher and prompt as listed in params), so a rerun that finds everything in
the cache writes identical bytes.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..records import Conversation, Rating
from .base import Backend, BackendError, BatchBackend, Prompt, Request, cache_key
from .cache import ResponseCache

CHUNK = 2048  # requests scheduled at a time (bounds memory; concurrency is bounded per teacher)

RETRY_MESSAGE = (
    "Your previous reply could not be used: {error}. Reply again with only one JSON object of the form "
    '{{"score": <integer from 1 to {scale}>, "assessment": "<why>", "confidence": "<how sure and why>"}} '
    "and nothing else."
)


@dataclass
class AnnotateStats:
    """Counts for metrics/annotate/<dataset>.json."""

    items: int = 0
    requests_sent: int = 0
    cache_hits: int = 0
    parse_retries: int = 0
    parsed_by: Counter = field(default_factory=Counter)  # "json" (strict) or "fallback"
    parse_warnings: int = 0  # accepted replies with a missing or damaged explanation
    by_key: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, rating: Rating) -> None:
        self.by_key[f"{rating.teacher}/{rating.prompt}"][rating.status] += 1

    def to_dict(self) -> dict[str, Any]:
        total = Counter()
        per = {}
        for key in sorted(self.by_key):
            c = self.by_key[key]
            total.update(c)
            n = sum(c.values())
            per[key] = {"n": n, "ok": c["ok"], "unparsable": c["unparsable"], "failed": c["failed"],
                        "failure_rate": round((c["unparsable"] + c["failed"]) / n, 6) if n else 0.0}
        n = sum(total.values())
        return {
            "items": self.items,
            "ratings": n,
            "ok": total["ok"],
            "unparsable": total["unparsable"],
            "failed": total["failed"],
            "failure_rate": round((total["unparsable"] + total["failed"]) / n, 6) if n else 0.0,
            "requests_sent": self.requests_sent,
            "cache_hits": self.cache_hits,
            "parse_retries": self.parse_retries,
            "parsed_by": dict(sorted(self.parsed_by.items())),
            "parse_warnings": self.parse_warnings,
            "by_teacher_prompt": per,
        }


def make_annotator(cfg, cache: ResponseCache | None, progress=None) -> "Annotator":
    """An Annotator with one backend per teacher of ``cfg`` (an ``AnnotateConfig``)."""
    from .backends import make_backend

    return Annotator([make_backend(t) for t in cfg.teachers], cache, max_parse_retries=cfg.max_parse_retries,
                     progress=progress)


class Annotator:
    """Runs the requests of one annotate stage against a set of teacher backends."""

    def __init__(self, backends: Sequence[Backend], cache: ResponseCache | None, *, max_parse_retries: int = 2,
                 progress=None):
        names = [b.teacher.name for b in backends]
        if len(set(names)) != len(names):
            raise ValueError(f"teacher names must be unique, got {names}")
        self.backends = {b.teacher.name: b for b in backends}
        self.cache = cache
        self.max_parse_retries = max_parse_retries
        self.stats = AnnotateStats()
        self.progress = progress
        self._sems: dict[str, asyncio.Semaphore] = {}

    # -- public ---------------------------------------------------------------------

    def run(self, convs: Iterable[Conversation], dimensions: Sequence[str], variants: Sequence[str]) -> list[Rating]:
        return asyncio.run(self.arun(list(convs), dimensions, variants))

    async def arun(self, convs: list[Conversation], dimensions: Sequence[str], variants: Sequence[str]) -> list[Rating]:
        from .prompts import build_prompt

        self._sems = {name: asyncio.Semaphore(max(1, b.concurrency)) for name, b in self.backends.items()}
        self.stats.items += len(convs)
        requests: list[Request] = []
        for conv in convs:
            for dim in dimensions:
                for variant in variants:
                    prompt = build_prompt(conv, dim, variant)
                    for name in self.backends:
                        requests.append(Request(conversation=conv, dimension=dim, teacher=name, prompt=prompt))
        out: list[Rating] = []
        for start in range(0, len(requests), CHUNK):
            chunk = requests[start:start + CHUNK]
            await self._prefetch_batches(chunk)
            out.extend(await asyncio.gather(*(self._rate(r) for r in chunk)))
        # fixed output order: conversation, dimension, teacher, prompt (as listed in params)
        index = {c.id: i for i, c in enumerate(convs)}
        dorder = {d: i for i, d in enumerate(dimensions)}
        order = {name: i for i, name in enumerate(self.backends)}
        vorder = {v: i for i, v in enumerate(variants)}
        out.sort(key=lambda r: (index[r.id], dorder[r.dimension], order[r.teacher], vorder[r.prompt]))
        return out

    async def aclose(self) -> None:
        for b in self.backends.values():
            await b.aclose()

    # -- internals ------------------------------------------------------------------

    async def _prefetch_batches(self, chunk: list[Request]) -> None:
        """Send first-attempt cache misses of batch backends in batches, storing the replies."""
        for name, backend in self.backends.items():
            if not isinstance(backend, BatchBackend):
                continue
            todo = [r for r in chunk if r.teacher == name]
            if backend.cacheable and self.cache is not None:
                keys = {cache_key(backend.identity(), r.messages(), 0): r for r in todo}
                stored = self.cache.get_many(keys)
                todo = [r for k, r in keys.items() if k not in stored]
            for i in range(0, len(todo), backend.batch_size):
                batch = todo[i:i + backend.batch_size]
                replies = await asyncio.to_thread(backend.complete_batch, [(r.messages(), r) for r in batch])
                self.stats.requests_sent += len(batch)
                for r, reply in zip(batch, replies):
                    if isinstance(reply, str) and backend.cacheable and self.cache is not None:
                        self.cache.put(cache_key(backend.identity(), r.messages(), 0), backend.kind,
                                       backend.teacher.model, reply)

    async def _reply(self, backend: Backend, request: Request) -> str:
        messages = request.messages()
        key = None
        if backend.cacheable and self.cache is not None:
            key = cache_key(backend.identity(), messages, request.attempt)
            stored = self.cache.get(key)
            if stored is not None:
                self.stats.cache_hits += 1
                return stored
        async with self._sems[backend.teacher.name]:
            reply = await backend.acomplete(messages, request)
        self.stats.requests_sent += 1
        if key is not None:
            self.cache.put(key, backend.kind, backend.teacher.model, reply)
        return reply

    async def _rate(self, request: Request) -> Rating:
        from .parse import parse_rating
        from .prompts import rubric_lines

        backend = self.backends[request.teacher]
        prompt: Prompt = request.prompt
        rubric = rubric_lines(prompt)
        for attempt in range(self.max_parse_retries + 1):
            try:
                reply = await self._reply(backend, request)
            except BackendError as e:
                return self._done(Rating(id=request.item_id, dimension=request.dimension, teacher=request.teacher,
                                         prompt=prompt.variant, scale=prompt.scale, raw_score=None, assessment="",
                                         confidence="", status="failed", error=str(e)))
            parsed = parse_rating(reply, prompt.scale, rubric)
            if parsed.score is not None:
                self.stats.parsed_by[parsed.method] += 1
                self.stats.parse_warnings += bool(parsed.warnings)
                return self._done(Rating(id=request.item_id, dimension=request.dimension, teacher=request.teacher,
                                         prompt=prompt.variant, scale=prompt.scale, raw_score=parsed.score,
                                         assessment=parsed.assessment, confidence=parsed.confidence, status="ok"))
            if attempt < self.max_parse_retries:
                self.stats.parse_retries += 1
                fix = RETRY_MESSAGE.format(error=parsed.error, scale=prompt.scale)
                request = Request(conversation=request.conversation, dimension=request.dimension,
                                  teacher=request.teacher, prompt=prompt, attempt=attempt + 1,
                                  followup=request.followup + ({"role": "assistant", "content": reply},
                                                               {"role": "user", "content": fix}))
        return self._done(Rating(id=request.item_id, dimension=request.dimension, teacher=request.teacher,
                                 prompt=prompt.variant, scale=prompt.scale, raw_score=None, assessment="",
                                 confidence="", status="unparsable",
                                 error=f"after {self.max_parse_retries + 1} attempts: {parsed.error}"))

    def _done(self, rating: Rating) -> Rating:
        self.stats.add(rating)
        if self.progress is not None:
            self.progress.update(1)
        return rating
