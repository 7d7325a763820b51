"""A small, real OpenAI-compatible HTTP server for tests and benchmarks: ``POST /v1/chat/completions``.

It runs an aiohttp app on 127.0.0.1:<free port> in a background thread (its own
event loop), so synchronous tests, asyncio tests and child processes can all
talk to it over real sockets. What it answers is scripted per request:

* a **queue** of actions (``FakeLLM([rate_limit(1), reply("ok")])``; more can be
  added with :meth:`FakeLLM.push`), consumed one per request; when the queue is
  empty the default answer is sent;
* or a **function** ``script(body, n) -> Action | None``: ``body`` is the parsed
  request JSON, ``n`` counts earlier requests *with the same messages*
  (0 on the first try of a prompt, 1 on its first retry …); ``None`` means the
  default answer. The function runs on the server's thread: keep it quick.

The default answer (no script, or the queue ran dry) is :func:`rating_json` of the
prompt, a deterministic JSON rating derived from a hash of the messages, sent
after ``delay`` seconds ("fixed delay" mode, used by the throughput benchmark and
by end-to-end annotate tests)::

    with FakeLLM(delay=0.05) as llm:          # or the ``fake_llm`` pytest fixture
        backend = make(base_url=llm.url)      # llm.url == "http://127.0.0.1:<port>/v1"
        ...
        assert llm.total == 200 and llm.max_in_flight <= 32

Actions (module-level constructors): :func:`reply` (content, optional delay, or
no choices at all), :func:`status` / :func:`rate_limit` / :func:`server_error`
(any HTTP status, with or without ``Retry-After``), :func:`hang` (answer nothing
for N seconds: past a client's read timeout), :func:`drop` (close the connection
abruptly, no response), :func:`truncated` (200 whose body stops half way and the
connection closes: fewer bytes than Content-Length promises), :func:`raw` (any
complete body, e.g. invalid JSON with a matching Content-Length).

``POST /model/{modelId}/converse`` is a stand-in for Amazon Bedrock's Converse API (moto's bedrock-runtime has
only InvokeModel): the request's ``system`` and ``messages`` text blocks become one chat, which is scripted,
counted and answered like a chat completion (``body["model"]`` is the model id), in Converse's reply shape
(``output.message.content[].text``, ``stopReason``, ``usage``); a scripted status becomes a Bedrock error
(``x-amzn-ErrorType``: ThrottlingException for 429, InternalServerException otherwise). The request's SigV4
signature is not checked. Point a bedrock teacher at it with ``options.endpoint_url: llm.root``.

``GET /v1/models`` (what a backend's preflight asks) lists the ids given as
``models`` (default ``("fake",)``); ``models=None`` leaves the route out, so it
answers 404 like a server without it. Those requests are counted in
:attr:`FakeLLM.model_lists` (with their headers in :attr:`FakeLLM.model_list_headers`),
not in :attr:`FakeLLM.requests`.

Every chat request is recorded (:attr:`FakeLLM.requests`: body, headers, arrival time,
action) and counted in total, per prompt (:meth:`FakeLLM.count`), and by the
peak number in flight (:attr:`FakeLLM.max_in_flight`). ``GET /_fake/stats`` returns
the counts as JSON, for a server run in another process::

    python tests/fakellm.py --delay 0.05      # prints "http://127.0.0.1:<port>/v1", serves until killed

(:func:`spawn` does that and returns a handle; the throughput benchmark uses it so
the server does not share the client's interpreter lock.)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from aiohttp import web
from multidict import CIMultiDict

CHAT_PATH = "/v1/chat/completions"

# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Action:
    """What the server does with one request. Build them with the functions below."""

    kind: str  # reply | status | hang | drop | truncated | raw
    content: str | None = None  # reply/truncated: the text; None = the default answer (rating_json)
    delay: float = 0.0  # seconds to wait before acting (hang: how long to hang)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # status/raw: the exact body
    no_choices: bool = False  # reply: "choices": []
    content_type: str = "application/json"


def reply(content: str | None = None, delay: float = 0.0, *, no_choices: bool = False) -> Action:
    """200 with a chat completion whose message is ``content`` (None: the default rating); ``no_choices``: ``[]``."""
    return Action("reply", content=content, delay=delay, no_choices=no_choices)


def status(code: int, *, headers: dict[str, str] | None = None, body: Any = None, delay: float = 0.0) -> Action:
    """An HTTP error (or any status) with an OpenAI-style error body unless ``body`` (bytes, str or JSON) is given."""
    if body is None:
        body = {"error": {"message": f"fake error {code}", "type": "fake", "code": code}}
    if not isinstance(body, bytes):
        body = (body if isinstance(body, str) else json.dumps(body)).encode()
    return Action("status", status=code, headers=dict(headers or {}), body=body, delay=delay)


def rate_limit(retry_after: float | str | None = None, *, retry_after_ms: float | None = None) -> Action:
    """429, with ``Retry-After: <retry_after>`` and/or ``retry-after-ms`` when given, none otherwise."""
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return status(429, headers=headers)


def server_error(code: int = 500) -> Action:
    return status(code)


def hang(seconds: float) -> Action:
    """Send nothing for ``seconds`` (then the default answer, if the client is still there)."""
    return Action("hang", delay=seconds)


def drop(delay: float = 0.0) -> Action:
    """Close the connection abruptly (TCP reset) without a response."""
    return Action("drop", delay=delay)


def truncated(content: str | None = None, delay: float = 0.0) -> Action:
    """200 with Content-Length of the full completion, but only its first half is sent; then the connection closes."""
    return Action("truncated", content=content, delay=delay)


def raw(body: bytes | str, *, code: int = 200, content_type: str = "application/json", delay: float = 0.0) -> Action:
    """Exactly ``body`` (complete, Content-Length matching), e.g. JSON cut short: ``raw('{"choices": [')``."""
    return Action(
        "raw",
        body=body.encode() if isinstance(body, str) else body,
        status=code,
        content_type=content_type,
        delay=delay,
    )


# --------------------------------------------------------------------------- default answer


def prompt_key(messages: Any) -> str:
    """The canonical form of a chat (what 'the same prompt' means for the per-prompt counts)."""
    return json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def rating_json(messages: Any) -> str:
    """A deterministic rating for a chat: score 1..4 (valid on both the 1-4 and 1-5 scales) from its sha256.

    ``{"score": k, "assessment": "...", "confidence": "..."}``; the same messages always give the same text.
    """
    digest = hashlib.sha256(prompt_key(messages).encode("utf-8")).hexdigest()
    score = int(digest[:8], 16) % 4 + 1
    return json.dumps(
        {
            "score": score,
            "assessment": f"Fake assessment {digest[:12]}: the response is rated {score} for this dimension.",
            "confidence": f"Fake confidence {digest[12:16]}: moderately sure.",
        }
    )


def completion(model: str, content: str | None, *, no_choices: bool = False) -> dict[str, Any]:
    choices = (
        []
        if no_choices
        else [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ]
    )
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


# --------------------------------------------------------------------------- the server


@dataclass
class Recorded:
    """One request as the server saw it."""

    index: int  # 0-based arrival order
    n: int  # earlier requests with the same messages
    body: Any  # parsed JSON (None if it was not JSON)
    headers: CIMultiDict  # case-insensitive: rec.headers["authorization"]
    arrived: float  # time.monotonic()
    action: str = ""


Script = Callable[[Any, int], "Action | None"]


class FakeLLM:
    """The fake server; see the module docstring. ``start()``/``stop()`` or ``with FakeLLM(...) as llm``."""

    def __init__(
        self,
        script: Iterable[Action] | Script | None = None,
        *,
        delay: float = 0.0,
        answer: Callable[[Any], str] = rating_json,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Iterable[str] | None = ("fake",),
    ):
        self.delay = delay
        self.models = None if models is None else list(models)
        self.model_lists = 0  # GET /v1/models requests
        self.model_list_headers: list[CIMultiDict] = []
        self.answer = answer
        self.host = host
        self._want_port = port
        self._lock = threading.Lock()
        self._fn: Script | None = None
        self._queue: list[Action] = []
        if callable(script):
            self._fn = script
        elif script is not None:
            self._queue = list(script)
        self.requests: list[Recorded] = []
        self._counts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ scripting and counts

    def push(self, *actions: Action) -> None:
        """Append actions to the queue (thread-safe, also while serving)."""
        with self._lock:
            self._queue.extend(actions)

    def set_script(self, script: Script | None) -> None:
        with self._lock:
            self._fn = script

    @property
    def root(self) -> str:
        """The server's root URL (the Converse stand-in's endpoint): ``http://127.0.0.1:<port>``."""
        return self.url.removesuffix("/v1")

    @property
    def url(self) -> str:
        """The base URL to give a client: ``http://127.0.0.1:<port>/v1``."""
        if self.port is None:
            raise RuntimeError("FakeLLM is not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def total(self) -> int:
        with self._lock:
            return len(self.requests)

    def count(self, messages: Any) -> int:
        """How many requests carried exactly these messages."""
        with self._lock:
            return self._counts[prompt_key(messages)]

    @property
    def prompt_counts(self) -> dict[str, int]:
        """Requests per distinct prompt, keyed by :func:`prompt_key`."""
        with self._lock:
            return dict(self._counts)

    @property
    def last(self) -> Recorded:
        with self._lock:
            return self.requests[-1]

    def reset(self) -> None:
        """Forget recorded requests, counts and queued actions (the script function stays)."""
        with self._lock:
            self.requests.clear()
            self._counts.clear()
            self._queue.clear()
            self.max_in_flight = self.in_flight
            self.model_lists = 0
            self.model_list_headers.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": len(self.requests),
                "distinct_prompts": len(self._counts),
                "max_in_flight": self.max_in_flight,
                "in_flight": self.in_flight,
            }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeLLM":
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as err:  # noqa: BLE001 - reported to the starting thread
                failure.append(err)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fakellm-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread = None
            raise failure[0]
        return self

    async def _astart(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(CHAT_PATH, self._handle)
        app.router.add_post("/model/{model_id}/converse", self._converse)
        if self.models is not None:
            app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_fake/stats", self._stats)
        # handler_cancellation: a client that gives up (timeout) cancels its hanging handler;
        # a short shutdown_timeout so stop() does not wait for hangs to finish.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.2)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._want_port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=1024).start()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> "FakeLLM":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ handlers

    def _next_action(self, body: Any, n: int) -> Action:
        with self._lock:
            fn = self._fn
            queued = self._queue.pop(0) if self._queue else None
        if queued is not None:
            return queued
        if fn is not None:
            action = fn(body, n)
            if action is not None:
                return action
        return Action("reply", delay=self.delay)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw_body = await request.read()
        try:
            body = json.loads(raw_body)
        except ValueError:
            body = None
        messages = body.get("messages") if isinstance(body, dict) else None
        key = prompt_key(messages)
        with self._lock:
            n = self._counts[key]
            self._counts[key] += 1
            rec = Recorded(
                index=len(self.requests), n=n, body=body, headers=CIMultiDict(request.headers), arrived=time.monotonic()
            )
            self.requests.append(rec)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            action = self._next_action(body, n)
            rec.action = action.kind
            return await self._act(request, action, body, messages)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _act(self, request: web.Request, action: Action, body: Any, messages: Any) -> web.StreamResponse:
        if action.delay > 0:
            await asyncio.sleep(action.delay)
        model = body.get("model", "fake") if isinstance(body, dict) else "fake"
        if action.kind in ("reply", "hang"):
            content = action.content if action.content is not None else self.answer(messages)
            payload = json.dumps(completion(model, content, no_choices=action.no_choices)).encode()
            return web.Response(body=payload, content_type="application/json")
        if action.kind in ("status", "raw"):
            return web.Response(
                status=action.status, body=action.body, headers=action.headers, content_type=action.content_type
            )
        if action.kind == "drop":
            _abort(request)
            raise asyncio.CancelledError  # nothing more to send; aiohttp drops the request quietly
        if action.kind == "truncated":
            content = action.content if action.content is not None else self.answer(messages)
            payload = json.dumps(completion(model, content)).encode()
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.content_length = len(payload)
            await resp.prepare(request)
            await resp.write(payload[: len(payload) // 2])
            await asyncio.sleep(0.01)  # let the half body leave before the reset
            _abort(request)
            raise asyncio.CancelledError
        raise ValueError(f"unknown fake action {action.kind!r}")

    async def _converse(self, request: web.Request) -> web.StreamResponse:
        """Bedrock Converse: translate to a chat, script it like one, answer in Converse's shape."""
        raw_body = await request.read()
        try:
            converse = json.loads(raw_body)
        except ValueError:
            converse = {}
        messages = [{"role": "system", "content": b.get("text", "")} for b in converse.get("system") or []]
        for m in converse.get("messages") or []:
            text = "".join(b.get("text", "") for b in m.get("content") or [])
            messages.append({"role": m.get("role"), "content": text})
        body = {"model": request.match_info["model_id"], "messages": messages, "converse": converse}
        key = prompt_key(messages)
        with self._lock:
            n = self._counts[key]
            self._counts[key] += 1
            rec = Recorded(
                index=len(self.requests), n=n, body=body, headers=CIMultiDict(request.headers), arrived=time.monotonic()
            )
            self.requests.append(rec)
        action = self._next_action(body, n)
        rec.action = action.kind
        if action.delay > 0:
            await asyncio.sleep(action.delay)
        if action.kind == "reply":
            text = action.content if action.content is not None else self.answer(messages)
            return web.json_response(
                {
                    "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                    "stopReason": "end_turn",
                    "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                    "metrics": {"latencyMs": 1},
                }
            )
        if action.kind == "status":
            error = "ThrottlingException" if action.status == 429 else "InternalServerException"
            return web.json_response(
                {"message": f"fake {error}"}, status=action.status, headers={"x-amzn-ErrorType": error}
            )
        raise ValueError(f"the Converse stand-in does not play {action.kind!r}")

    async def _models(self, request: web.Request) -> web.Response:
        with self._lock:
            self.model_lists += 1
            self.model_list_headers.append(CIMultiDict(request.headers))
            models = list(self.models or ())
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "fakellm"} for m in models],
            }
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


# --------------------------------------------------------------------------- another process


class Spawned:
    """A fake server in a child process (fixed-delay mode only): ``url``, ``stats()``, ``stop()``."""

    def __init__(self, proc: subprocess.Popen, url: str):
        self.proc = proc
        self.url = url

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/_fake/stats", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Spawned":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def spawn(delay: float = 0.0, *, python: str = sys.executable) -> Spawned:
    """Start ``python tests/fakellm.py --delay <delay>`` and wait for its URL."""
    proc = subprocess.Popen(
        [python, os.path.abspath(__file__), "--delay", str(delay)], stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"fake LLM server did not start (printed {line!r}, exit {proc.poll()})")
    return Spawned(proc, line)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Serve the fake OpenAI-compatible LLM (fixed-delay mode).")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    server = FakeLLM(delay=args.delay, port=args.port).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


# --------------------------------------------------------------------------- pytest fixture

try:
    import pytest
except ImportError:  # used as a script without pytest installed
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def fake_llm():
        """A started :class:`FakeLLM` (default answers, no delay); script it with ``push``/``set_script``."""
        with FakeLLM() as server:
            yield server


if __name__ == "__main__":
    main()
