"""The annotate engine: conversations × dimensions × teachers × prompts -> Rating records.

For each request the engine

1. renders the prompt (``prompts.build_prompt``; one per conversation,
   dimension and variant, shared by the teachers),
2. looks the reply up in the response cache (key: backend identity, full chat,
   attempt) and otherwise sends it to the teacher's backend, at most
   ``backend.concurrency`` requests in flight per teacher; a
   :class:`~.base.BatchBackend` gets the misses of a first attempt in batches;
   before a teacher's first cache miss its :meth:`~.base.Backend.apreflight`
   runs once (credentials, endpoint, model: a
   :class:`~.base.PreflightError` stops the run; see "Preflight" below),
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

Preflight
---------
Before each chunk is scheduled, every teacher not yet checked that has a
first-attempt cache miss in the chunk (or cannot be cached) is preflighted,
all of them before any request of the chunk is sent; a parse retry that
misses the cache preflights its teacher lazily. Each teacher is checked at
most once per :class:`Annotator`. A rerun that finds every reply in the cache
never preflights, so it needs no credentials and no server.

A teacher that fails wholesale
------------------------------
:func:`check_failed_share` is the stage's guard against a teacher whose
requests fail wholesale (a revoked key, a server down mid-run): per teacher ×
prompt × dimension, the share of ratings with status ``failed`` must not exceed
``annotate.max_failed_share``. The caller runs it after the run, when every
reply that arrived is committed to the response cache (``ResponseCache.put``
commits before returning), and before writing any output, so a rerun resends
only the failed requests.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..errors import ExplainftError
from ..records import Conversation, Rating
from .backends import make_backend
from .base import Backend, BackendError, BatchBackend, PreflightError, Prompt, Request, cache_key
from .cache import ResponseCache
from .parse import parse_rating
from .prompts import build_prompt, rubric_lines

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
    # status counts per (teacher, prompt, dimension): the unit annotate.max_failed_share is checked on
    by_key: dict[tuple[str, str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, rating: Rating) -> None:
        self.by_key[(rating.teacher, rating.prompt, rating.dimension)][rating.status] += 1

    def to_dict(self) -> dict[str, Any]:
        total = Counter()
        by_tp: dict[str, Counter] = defaultdict(Counter)
        per_dim = {}
        for teacher, prompt, dim in sorted(self.by_key):
            c = self.by_key[(teacher, prompt, dim)]
            total.update(c)
            by_tp[f"{teacher}/{prompt}"].update(c)
            n = sum(c.values())
            per_dim[f"{teacher}/{prompt}/{dim}"] = {
                "n": n,
                "ok": c["ok"],
                "unparsable": c["unparsable"],
                "failed": c["failed"],
                "failed_share": round(c["failed"] / n, 6) if n else 0.0,
            }
        per = {}
        for key in sorted(by_tp):
            c = by_tp[key]
            n = sum(c.values())
            per[key] = {
                "n": n,
                "ok": c["ok"],
                "unparsable": c["unparsable"],
                "failed": c["failed"],
                "failure_rate": round((c["unparsable"] + c["failed"]) / n, 6) if n else 0.0,
            }
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
            "by_teacher_prompt_dimension": per_dim,
        }


# --------------------------------------------------------------------------- a teacher that fails wholesale


class FailedShareError(ExplainftError):
    """Some teacher × prompt × dimension groups had more ``failed`` ratings than ``annotate.max_failed_share``.

    ``groups`` lists each such group in params order: ``teacher``, ``prompt``,
    ``dimension``, ``n``, ``failed``, ``unparsable``, ``first_error``.
    """

    def __init__(self, groups: list[dict[str, Any]], max_share: float, total_groups: int, note: str = ""):
        self.groups = groups
        self.max_share = max_share
        lines = [
            f"{len(groups)} of {total_groups} teacher × prompt × dimension groups had more failed requests "
            f"than annotate.max_failed_share ({_pct(max_share)}) allows; no output was written:"
        ]
        for g in groups:
            share = g["failed"] / g["n"]
            lines.append(
                f"  teacher {g['teacher']!r} prompt {g['prompt']} dimension {g['dimension']}: "
                f"{g['failed']:,} of {g['n']:,} requests failed ({_pct(share, above=max_share)} > "
                f"annotate.max_failed_share {_pct(max_share)}), {g['unparsable']:,} unparsable; "
                f"first error: {g['first_error']}"
            )
        lines.append(
            "Fix the cause named in the first errors (credentials, server, model name) and rerun"
            + (f"; {note}" if note else "")
            + ". To accept the failures instead, raise "
            "annotate.max_failed_share."
        )
        super().__init__("\n".join(lines))


def _pct(share: float, above: float | None = None) -> str:
    """``share`` as a percentage: a threshold as given (``2%``, ``2.5%``); a share with one decimal, or
    more (up to 4) where needed to show that it is above ``above`` (``2.05%``, not ``2.0%``)."""
    if above is None:
        return f"{share * 100:g}%"
    for digits in range(5):
        text = f"{share * 100:.{digits}f}"
        if float(text) > above * 100 and (digits >= 1 or abs(float(text) - share * 100) < 1e-9):
            return f"{text}%"
    return f"{share * 100!r}%"


def check_failed_share(ratings: Sequence[Rating], max_share: float, *, note: str = "") -> None:
    """Raise FailedShareError listing every teacher × prompt × dimension whose failed share exceeds ``max_share``.

    A *failure* here is a rating with status ``failed``: a request that errored
    after the backend's own retries (network, authentication, server, a prompt the
    local model refuses as too long). ``unparsable`` ratings do not count: the
    teacher did answer, ``annotate.max_parse_retries`` corrective retries later
    still badly; that is the teacher's quality, not its availability, which merge
    already accounts for (``merge.min_valid``) and the metrics report per group.
    Counting it would stop the pipeline for a weak but working teacher, the case
    this check must not confuse with a broken one.

    The share is ``failed / n`` per group, compared strictly (``max_share: 0``
    allows no failure, ``1`` any number). Groups are listed in params order
    (teacher, prompt, dimension as the ratings' fixed order first shows them),
    each with its counts and its first error in that order. ``note`` is appended
    to the advice (e.g. where the cache is).
    """
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    teachers: dict[str, int] = {}
    prompts: dict[str, int] = {}
    dims: dict[str, int] = {}
    for r in ratings:
        teachers.setdefault(r.teacher, len(teachers))
        prompts.setdefault(r.prompt, len(prompts))
        dims.setdefault(r.dimension, len(dims))
        g = groups.get((r.teacher, r.prompt, r.dimension))
        if g is None:
            g = groups[(r.teacher, r.prompt, r.dimension)] = {
                "teacher": r.teacher,
                "prompt": r.prompt,
                "dimension": r.dimension,
                "n": 0,
                "failed": 0,
                "unparsable": 0,
                "first_error": None,
            }
        g["n"] += 1
        if r.status == "failed":
            g["failed"] += 1
            if g["first_error"] is None:
                g["first_error"] = r.error or "(no message)"
        elif r.status == "unparsable":
            g["unparsable"] += 1
    over = [g for g in groups.values() if g["failed"] / g["n"] > max_share]
    if over:
        over.sort(key=lambda g: (teachers[g["teacher"]], prompts[g["prompt"]], dims[g["dimension"]]))
        raise FailedShareError(over, max_share, len(groups), note)


def make_annotator(cfg, cache: ResponseCache | None, progress=None) -> "Annotator":
    """An Annotator with one backend per teacher of ``cfg`` (an ``AnnotateConfig``)."""

    return Annotator(
        [make_backend(t) for t in cfg.teachers], cache, max_parse_retries=cfg.max_parse_retries, progress=progress
    )


class Annotator:
    """Runs the requests of one annotate stage against a set of teacher backends."""

    def __init__(
        self, backends: Sequence[Backend], cache: ResponseCache | None, *, max_parse_retries: int = 2, progress=None
    ):
        names = [b.teacher.name for b in backends]
        if len(set(names)) != len(names):
            raise ValueError(f"teacher names must be unique, got {names}")
        self.backends = {b.teacher.name: b for b in backends}
        self.cache = cache
        self.max_parse_retries = max_parse_retries
        self.stats = AnnotateStats()
        self.progress = progress
        self._sems: dict[str, asyncio.Semaphore] = {}
        self.preflighted: set[str] = set()  # teachers whose apreflight passed
        self._preflight_failed: dict[str, BaseException] = {}
        self._preflight_locks: dict[str, asyncio.Lock] = {}

    # -- public ---------------------------------------------------------------------

    def run(self, convs: Iterable[Conversation], dimensions: Sequence[str], variants: Sequence[str]) -> list[Rating]:
        return asyncio.run(self.arun(list(convs), dimensions, variants))

    async def arun(self, convs: list[Conversation], dimensions: Sequence[str], variants: Sequence[str]) -> list[Rating]:

        self._sems = {name: asyncio.Semaphore(max(1, b.concurrency)) for name, b in self.backends.items()}
        self._preflight_locks = {name: asyncio.Lock() for name in self.backends}
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
            chunk = requests[start : start + CHUNK]
            await self._preflight_chunk(chunk)
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

    async def _preflight_chunk(self, chunk: list[Request]) -> None:
        """Preflight every unchecked teacher with a first-attempt miss in ``chunk``, before any of its requests.

        All such teachers are checked (concurrently) and every failure is reported:
        one failure is raised as it is, several as one PreflightError listing them
        in params order.
        """
        need = []
        for name, backend in self.backends.items():
            if name in self.preflighted:
                continue
            todo = [r for r in chunk if r.teacher == name]
            if not todo:
                continue
            if backend.cacheable and self.cache is not None:
                keys = {cache_key(backend.identity(), r.messages(), 0) for r in todo}
                if len(self.cache.get_many(keys)) == len(keys):
                    continue  # all cached: no request, no preflight
            need.append(backend)
        results = await asyncio.gather(*(self._preflight(b) for b in need), return_exceptions=True)
        errors = [e for e in results if isinstance(e, BaseException)]
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise PreflightError(
                f"{len(errors)} teachers failed their preflight check:\n" + "\n".join(f"  {e}" for e in errors)
            )

    async def _preflight(self, backend: Backend) -> None:
        """Run ``backend.apreflight()`` once per Annotator; a failure is remembered and raised again."""
        name = backend.teacher.name
        if name in self.preflighted:
            return
        async with self._preflight_locks[name]:
            if name in self.preflighted:
                return
            if name in self._preflight_failed:
                raise self._preflight_failed[name]
            try:
                await backend.apreflight()
            except Exception as e:
                self._preflight_failed[name] = e
                raise
            self.preflighted.add(name)

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
            if todo:
                await self._preflight(backend)
            for i in range(0, len(todo), backend.batch_size):
                batch = todo[i : i + backend.batch_size]
                replies = await asyncio.to_thread(backend.complete_batch, [(r.messages(), r) for r in batch])
                self.stats.requests_sent += len(batch)
                for r, reply in zip(batch, replies):
                    if isinstance(reply, str) and backend.cacheable and self.cache is not None:
                        self.cache.put(
                            cache_key(backend.identity(), r.messages(), 0), backend.kind, backend.teacher.model, reply
                        )

    async def _reply(self, backend: Backend, request: Request) -> str:
        messages = request.messages()
        key = None
        if backend.cacheable and self.cache is not None:
            key = cache_key(backend.identity(), messages, request.attempt)
            stored = self.cache.get(key)
            if stored is not None:
                self.stats.cache_hits += 1
                return stored
        await self._preflight(backend)
        async with self._sems[backend.teacher.name]:
            reply = await backend.acomplete(messages, request)
        self.stats.requests_sent += 1
        if key is not None:
            self.cache.put(key, backend.kind, backend.teacher.model, reply)
        return reply

    async def _rate(self, request: Request) -> Rating:

        backend = self.backends[request.teacher]
        prompt: Prompt = request.prompt
        rubric = rubric_lines(prompt)
        for attempt in range(self.max_parse_retries + 1):
            try:
                reply = await self._reply(backend, request)
            except BackendError as e:
                return self._done(
                    Rating(
                        id=request.item_id,
                        dimension=request.dimension,
                        teacher=request.teacher,
                        prompt=prompt.variant,
                        scale=prompt.scale,
                        raw_score=None,
                        assessment="",
                        confidence="",
                        status="failed",
                        error=str(e),
                    )
                )
            parsed = parse_rating(reply, prompt.scale, rubric)
            if parsed.score is not None:
                self.stats.parsed_by[parsed.method] += 1
                self.stats.parse_warnings += bool(parsed.warnings)
                return self._done(
                    Rating(
                        id=request.item_id,
                        dimension=request.dimension,
                        teacher=request.teacher,
                        prompt=prompt.variant,
                        scale=prompt.scale,
                        raw_score=parsed.score,
                        assessment=parsed.assessment,
                        confidence=parsed.confidence,
                        status="ok",
                    )
                )
            if attempt < self.max_parse_retries:
                self.stats.parse_retries += 1
                fix = RETRY_MESSAGE.format(error=parsed.error, scale=prompt.scale)
                request = Request(
                    conversation=request.conversation,
                    dimension=request.dimension,
                    teacher=request.teacher,
                    prompt=prompt,
                    attempt=attempt + 1,
                    followup=request.followup
                    + ({"role": "assistant", "content": reply}, {"role": "user", "content": fix}),
                )
        return self._done(
            Rating(
                id=request.item_id,
                dimension=request.dimension,
                teacher=request.teacher,
                prompt=prompt.variant,
                scale=prompt.scale,
                raw_score=None,
                assessment="",
                confidence="",
                status="unparsable",
                error=f"after {self.max_parse_retries + 1} attempts: {parsed.error}",
            )
        )

    def _done(self, rating: Rating) -> Rating:
        self.stats.add(rating)
        if self.progress is not None:
            self.progress.update(1)
        return rating
