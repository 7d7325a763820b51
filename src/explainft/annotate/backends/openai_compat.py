"""Teacher backend for any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, TGI, llama.cpp, Ollama, OpenAI).

A thin adapter over the official client, ``openai.AsyncOpenAI(base_url=..., api_key=...,
timeout=..., max_retries=...)`` (openai 3.57, HTTP through ``httpx2``). Teacher options
(``annotate.teachers[i].options``)::

    base_url     required; e.g. http://127.0.0.1:8000/v1 (no credentials in the URL)
    api_key_env  the NAME of the environment variable holding the key (default OPENAI_API_KEY);
                 read once, at construction. Named here, it must be set and non-empty:
                 the preflight fails naming it otherwise. Left at the default and unset
                 or empty -> the stand-in key "EMPTY", which local servers accept.
                 Never put the key itself in params.
    concurrency  int >= 1, default 8: the engine keeps at most this many calls in flight
    timeout      seconds > 0, default 60, per attempt (see below)
    max_retries  int >= 0, default 5: retries after the first attempt
    json_mode    bool, default false: send response_format={"type": "json_object"}

``teacher.sampling`` (temperature, top_p, max_tokens, seed) is passed as is to
``chat.completions.create``.

Retries: what the client does on its own
-----------------------------------------
Verified against ``openai/_base_client.py`` (``AsyncAPIClient.request``,
``_should_retry``, ``_calculate_retry_timeout``, ``_parse_retry_after_header``) of
openai 3.57.0 and against ``tests/fakellm.py`` in ``tests/test_openai_backend.py``.
At most ``max_retries`` retries (``max_retries + 1`` requests) are made for:

* HTTP **408, 409, 429 and every status >= 500** (unless the server sends
  ``x-should-retry: false``; ``x-should-retry: true`` forces a retry of any status);
* **timeouts** (httpx2 connect/read/write/pool timeouts) and **connection errors**
  (refused, reset, server closed the connection, a body shorter than its
  Content-Length).

Other 4xx (400, 401, 403, 404, 422) are not retried.
The wait before retry ``k`` (k = 0, 1, …):

* if the response carries ``retry-after-ms`` (milliseconds; preferred) or ``Retry-After``
  (seconds, fractions allowed, or an HTTP date) with a value in ``(0, 120]`` seconds:
  exactly that long (no jitter);
* a ``Retry-After`` **above 120 s** (``MAX_RETRY_AFTER_DELAY``): **no retry at all**; the
  error is raised at once (our message says so);
* otherwise (no header, 0, negative, unparsable): ``min(0.5 * 2**k, 8) * (1 - 0.25 * U)``,
  ``U ~ uniform[0, 1)`` - exponential backoff from 0.5 s, capped at 8 s, with up to
  25 % jitter downwards: 0.375-0.5, 0.75-1, 1.5-2, 3-4, 6-8, 6-8 … s.

Each retry resends the same body with an ``x-stainless-retry-count: <k>`` header,
which we read back to say how many attempts were made. So the client already covers
what this project needs (429/5xx/timeout retries, exponential backoff with jitter,
Retry-After); nothing is added here except turning its final exception into a
:class:`BackendError`.

``timeout`` is httpx2's per-phase timeout for one attempt: connecting, sending, and
*each* read of the response may take at most ``timeout`` seconds. A server that sends
nothing for that long fails the attempt (then retried); the worst case of one call is
about ``(max_retries + 1) * timeout`` plus the backoff waits.

Errors
------
When the client gives up, :class:`BackendError` names the teacher, the endpoint URL,
the model, the cause (HTTP status and the server's error message, "timed out",
"connection refused" …), the number of attempts, and what to do. The API key never
appears in a message, a log record or a ``repr``: it lives only inside the client,
messages are built from the status/cause (and scrubbed of the key in case a server
echoes it), and the BackendError is raised ``from None`` so no chained exception
carries request headers into a traceback.

Preflight
---------
:meth:`apreflight` runs once, before the teacher's first request (the engine calls it
right before the first cache miss, so a fully cached rerun needs neither key nor
server). It checks, in order:

1. the key: if ``options.api_key_env`` is given and that variable is unset or empty,
   it fails at once naming the variable and the teacher (no request is sent);
2. the endpoint and model: ``GET <base_url>/models`` (``client.models.list()``, with the
   teacher's ``timeout`` and ``max_retries``). The model passes if it is listed.
   A connection error or timeout fails naming the teacher and the URL; 401/403 names
   the key variable; another error status fails with the server's message;
3. the fallback: when ``/models`` is not implemented (404, 405, 501, or a body that is
   not a model list) or does not list the model, one chat completion of
   ``max_tokens: 1`` to the configured model decides. Servers that serve a model under
   another name than they list (llama.cpp and TGI ignore ``model``; Ollama lists
   ``name:latest`` and answers ``name``) pass; a server that refuses the model fails
   with the ids ``/models`` lists. That costs one tiny request, only in those cases.

Every failure is a :class:`PreflightError` (the stage stops), never a rating.

Replies
-------
The text of ``choices[0].message.content``. A reply with an empty ``choices`` list, or a
choice whose content is empty or null (a refusal, ``max_tokens`` hit before any text),
returns ``""``: that is the model's answer, not a transport failure, and the engine's
parser records it as unparsable (and may retry with a corrective follow-up). A 200 body
that is not JSON, or JSON without a ``choices`` field (an error object some proxies
send with status 200), is a protocol failure: BackendError, not retried.

Throughput
----------
The client spends about 2-3 ms of CPU per call (request validation, httpx2's pool,
response models; ``benchmarks/test_bench_openai.py``), so one process tops out at a few
hundred calls/s: irrelevant at real teacher latencies (0.5 s+ per answer), visible only
against a server answering in a few ms.

Cache identity
--------------
``identity()`` is ``{backend, model, sampling}`` plus ``response_format: json_object``
when ``json_mode`` is on (constrained decoding changes the answer). ``base_url`` is
**not** part of it, as TeacherConfig documents for ``options``: the same weights served
from another host or port give the same answers, and moving a server must not throw
away a paid-for cache. The price: two servers serving *different* weights under the
same ``model`` name share cache entries - name models precisely (llama.cpp's server
ignores ``model``: give the teacher the GGUF's name).
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit

import openai

from ...errors import ConfigError
from ..base import Backend, BackendError, PreflightError, Request, TeacherConfig

log = logging.getLogger(__name__)

PLACEHOLDER_KEY = "EMPTY"
DEFAULTS: dict[str, Any] = {
    "api_key_env": "OPENAI_API_KEY",
    "concurrency": 8,
    "timeout": 60.0,
    "max_retries": 5,
    "json_mode": False,
}
OPTION_KEYS = {"base_url", *DEFAULTS}
# statuses the client retries by itself (openai/_base_client.py: _should_retry)
RETRIED_STATUSES = frozenset({408, 409, 429})
RETRY_AFTER_CAP_S = 120.0  # openai._constants.MAX_RETRY_AFTER_DELAY
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# preflight: statuses of GET /models that mean "this server has no such route"
NO_MODELS_ROUTE = frozenset({404, 405, 501})
# preflight fallback: one chat completion of one token (see the module docstring)
PROBE_MESSAGES = ({"role": "user", "content": "Reply with the word OK."},)


class _Secret:
    """Holds the API key; its repr never shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


def _options(teacher: TeacherConfig) -> dict[str, Any]:
    """Validate ``teacher.options``; returns them with defaults filled in."""
    prefix = teacher.options_key
    raw = dict(teacher.options)
    if "api_key" in raw:  # never echo the value: it is probably the key
        raise ConfigError(
            f"{prefix}.api_key",
            "never put an API key in params; export it in an environment "
            "variable and name that variable in options.api_key_env",
        )
    teacher.check_option_keys(OPTION_KEYS)
    out = {**DEFAULTS, **raw}

    base_url = raw.get("base_url")
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigError(
            f"{prefix}.base_url", "required: the server's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
        )
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{prefix}.base_url", f"must be an http:// or https:// URL, got {base_url!r}")
    if parts.username or parts.password:  # do not echo: it holds a credential
        raise ConfigError(
            f"{prefix}.base_url",
            "must not contain credentials (user:password@); "
            "put the key in the environment variable named by options.api_key_env",
        )
    out["base_url"] = base_url.strip().rstrip("/")

    env = out["api_key_env"]
    if not isinstance(env, str) or not _ENV_NAME.match(env):
        # not echoed: a value that is not a variable name may well be the key itself
        raise ConfigError(
            f"{prefix}.api_key_env",
            "must be the NAME of an environment variable (letters, digits, _; e.g. OPENAI_API_KEY), not the key itself",
        )
    for key in ("concurrency", "max_retries"):
        v, low = out[key], 1 if key == "concurrency" else 0
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{prefix}.{key}", f"must be an integer >= {low}, got {v!r}")
    t = out["timeout"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0 or t != t or t == float("inf"):
        raise ConfigError(f"{prefix}.timeout", f"must be a number of seconds > 0, got {t!r}")
    out["timeout"] = float(t)
    if not isinstance(out["json_mode"], bool):
        raise ConfigError(f"{prefix}.json_mode", f"must be true or false, got {out['json_mode']!r}")
    return out


class OpenAICompatBackend(Backend):
    """A teacher behind an OpenAI-compatible chat-completions endpoint; see the module docstring."""

    kind = "openai"

    def __init__(self, teacher: TeacherConfig):
        super().__init__(teacher)
        opts = _options(teacher)
        self.base_url: str = opts["base_url"]
        self.api_key_env: str = opts["api_key_env"]
        self.concurrency = opts["concurrency"]
        self.timeout: float = opts["timeout"]
        self.max_retries: int = opts["max_retries"]
        self.json_mode: bool = opts["json_mode"]
        self.key_named = "api_key_env" in teacher.options  # a named variable must be set (apreflight)
        key = os.environ.get(self.api_key_env) or ""
        self.key_is_stand_in = not key
        if not key:
            log.info(
                "teacher %s: $%s is not set; sending the stand-in key %r to %s",
                teacher.name,
                self.api_key_env,
                PLACEHOLDER_KEY,
                self.base_url,
            )
        self._key = _Secret(key or PLACEHOLDER_KEY)
        self._client: openai.AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(teacher={self.teacher.name!r}, model={self.teacher.model!r}, "
            f"base_url={self.base_url!r}, concurrency={self.concurrency})"
        )

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        if self.json_mode:
            ident["response_format"] = "json_object"
        return ident

    # ------------------------------------------------------------------ client

    def _get_client(self) -> openai.AsyncOpenAI:
        """The client of the running event loop (a pooled connection cannot outlive its loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # A client left from an earlier, finished loop is dropped, not closed: its connections
            # belonged to that loop and died with it. DefaultAsyncHttpxClient is the SDK's public
            # alias with its own defaults (pool limits, redirects) but without the __del__ hook of
            # its internal wrapper, which would try to close the dropped client on the *new* loop
            # and log "Event loop is closed". The SDK sends `timeout` with every request.
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._key.value,
                timeout=self.timeout,
                max_retries=self.max_retries,
                http_client=openai.DefaultAsyncHttpxClient(),
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        client, loop, self._client, self._client_loop = self._client, self._client_loop, None, None
        # a client of another (finished) loop cannot be closed from this one; its connections died with it
        if client is not None and loop is asyncio.get_running_loop():
            await client.close()

    # ------------------------------------------------------------------ completion

    async def acomplete(self, messages: list[dict[str, str]], request: Request | None = None) -> str:
        kwargs: dict[str, Any] = dict(self.teacher.sampling)
        if self.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        client = self._get_client()
        try:
            reply = await client.chat.completions.create(model=self.teacher.model, messages=messages, **kwargs)
        except (openai.APIError, json.JSONDecodeError) as err:
            raise self._transport_error(err) from None
        return self._content(reply)

    def _transport_error(self, err: Exception, what: str | None = None) -> BackendError:
        """The BackendError for an exception of the client on ``what`` (default: POST <endpoint>)."""
        if isinstance(err, openai.APIStatusError):
            return self._status_error(err, what)
        if isinstance(err, openai.APITimeoutError):
            return self._fail(
                f"timed out (no response within timeout={self.timeout:g}s)",
                _attempts(err),
                "raise options.timeout, or lower options.concurrency if the server is overloaded",
                what,
            )
        if isinstance(err, openai.APIConnectionError):
            return self._fail(
                f"connection failed: {_root_cause(err)}",
                _attempts(err),
                "is the server running and reachable at options.base_url?",
                what,
            )
        if isinstance(err, (json.JSONDecodeError, openai.APIResponseValidationError)):
            return self._fail(
                f"the reply is not valid JSON ({type(err).__name__}: {err})",
                None,
                "the server or a proxy sent a broken body; check its log",
                what,
            )
        return self._fail(f"{type(err).__name__}: {_excerpt(str(err))}", None, "", what)

    # ------------------------------------------------------------------ preflight

    async def apreflight(self) -> None:
        """Key, endpoint and model, checked once before the first request; see "Preflight" in the module docstring."""
        name = self.teacher.name
        if self.key_named and self.key_is_stand_in:
            raise PreflightError(
                f"preflight: teacher {name!r}: the environment variable ${self.api_key_env} "
                f"({self.teacher.options_key}.api_key_env) is unset or empty; export the API "
                f"key for {self.base_url} in it, or remove options.api_key_env if the server "
                "takes no key"
            )
        client = self._get_client()
        listing = f"GET {self.base_url}/models"
        served: list[str] | None = None  # None: the server gave no usable model list
        try:
            page = await client.models.list()
        except openai.APIStatusError as err:
            if err.status_code not in NO_MODELS_ROUTE:
                raise self._preflight_error(err, listing) from None
        except openai.APIConnectionError as err:  # refused, reset, timed out
            raise self._preflight_error(err, listing) from None
        except (json.JSONDecodeError, openai.APIResponseValidationError):
            pass
        else:
            data = getattr(page, "data", None)
            if isinstance(data, list):
                served = [m.id for m in data if isinstance(getattr(m, "id", None), str)]
        if served is not None and self.teacher.model in served:
            log.info("teacher %s: %s serves %s", name, self.base_url, self.teacher.model)
            return
        # not listed, or no list: one chat completion of one token decides
        try:
            reply = await client.chat.completions.create(
                model=self.teacher.model, messages=list(PROBE_MESSAGES), max_tokens=1
            )
            self._content(reply)
        except openai.APIStatusError as err:
            if served is not None and err.status_code in (400, 404, 422):
                shown = ", ".join(repr(m) for m in served[:20]) + (
                    f" … ({len(served)} in all)" if len(served) > 20 else ""
                )
                detail = re.sub(r"^Error code: \d+ - ", "", err.message or "")
                raise PreflightError(
                    self._scrub(
                        f"preflight: teacher {name!r}: model {self.teacher.model!r} is not served by {self.base_url}: "
                        f"{listing} lists {shown or 'no model'}, and a one-token chat completion with it was "
                        f"refused (HTTP {err.status_code}: {_excerpt(detail)}); set "
                        f"annotate.teachers[{name}].model to a served id"
                    )
                ) from None
            raise self._preflight_error(err, f"POST {self.endpoint}") from None
        except (openai.APIError, json.JSONDecodeError) as err:
            raise self._preflight_error(err, f"POST {self.endpoint}") from None
        except BackendError as err:  # a 200 that is not a chat completion
            raise PreflightError(f"preflight: {err}") from None
        log.info(
            "teacher %s: %s answers for %s (%s)",
            name,
            self.base_url,
            self.teacher.model,
            "not listed by /models" if served is not None else "no model list at /models",
        )

    def _preflight_error(self, err: Exception, what: str) -> PreflightError:
        return PreflightError(f"preflight: {self._transport_error(err, what)}")

    def _content(self, reply: Any) -> str:
        choices = getattr(reply, "choices", None)
        if choices is None:
            extra = getattr(reply, "model_extra", None) or {}
            detail = _excerpt(str(extra.get("error") or extra or reply))
            raise self._fail(
                f"the reply is not a chat completion (no 'choices'): {detail}",
                None,
                "check that options.base_url points at an OpenAI-compatible /v1 endpoint",
            )
        if not choices:
            log.debug("teacher %s: reply with no choices; returning ''", self.teacher.name)
            return ""
        message = getattr(choices[0], "message", None)
        content = getattr(message, "content", None)
        return content if isinstance(content, str) else ""

    def _status_error(self, err: openai.APIStatusError, what: str | None = None) -> BackendError:
        code = err.status_code
        try:
            phrase = http.HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        detail = re.sub(r"^Error code: \d+ - ", "", err.message or "")
        cause = f"HTTP {code} {phrase}".rstrip() + (f": {_excerpt(detail)}" if detail else "")
        attempts = _attempts(err)
        retryable = code in RETRIED_STATUSES or code >= 500
        gave_up = "after all retries" if attempts is None or attempts > self.max_retries else "without retrying"
        if retryable and attempts is not None and attempts <= self.max_retries:
            headers = err.response.headers
            if headers.get("x-should-retry") == "false":
                cause += " (not retried: the server sent x-should-retry: false)"
            elif "retry-after-ms" in headers or "retry-after" in headers:
                wait = (
                    f"{headers['retry-after-ms']} ms (retry-after-ms)"
                    if "retry-after-ms" in headers
                    else f"{headers['retry-after']} (Retry-After)"
                )
                cause += (
                    f" (not retried: the server asked to wait {wait}, more than the client's "
                    f"{RETRY_AFTER_CAP_S:g} s cap)"
                )
        if code in (401, 403):
            unset = ' (unset: the stand-in key "EMPTY" was sent)' if self.key_is_stand_in else ""
            hint = f"check the API key in ${self.api_key_env}{unset}"
            if self.key_is_stand_in and not self.key_named:
                hint += "; name the variable that holds it in options.api_key_env"
        elif code == 404:
            hint = (
                "check options.base_url (OpenAI-compatible servers answer at <base_url>/chat/completions; "
                "it usually ends in /v1) and the model name"
            )
        elif code == 429:
            hint = f"rate limited ({gave_up}): lower options.concurrency or raise options.max_retries"
        elif code >= 500:
            hint = f"server error ({gave_up}): check the server's log, or raise options.max_retries"
        elif code in (400, 422):
            hint = "the server rejected the request: check the model name and the teacher's sampling settings"
        else:
            hint = ""
        return self._fail(cause, attempts, hint, what)

    def _fail(self, cause: str, attempts: int | None, hint: str, what: str | None = None) -> BackendError:
        """``what`` is the request that failed (default: ``POST <endpoint>``)."""
        what = what or f"POST {self.endpoint}"
        msg = f"teacher {self.teacher.name!r}: {what} (model {self.teacher.model!r}) failed"
        if attempts is not None:
            msg += f" after {attempts} attempt{'s' if attempts != 1 else ''}"
        msg += f": {cause}"
        if hint:
            msg += f"; {hint}"
        return BackendError(self._scrub(msg))

    def _scrub(self, text: str) -> str:
        key = self._key.value
        if len(key) >= 6 and key != PLACEHOLDER_KEY:
            text = text.replace(key, "<redacted>")
        return text


def _attempts(err: openai.APIError) -> int | None:
    """Requests made, from the ``x-stainless-retry-count`` header the client put on the last one."""
    request = getattr(err, "request", None)
    try:
        return int(request.headers.get("x-stainless-retry-count", "0")) + 1 if request is not None else None
    except (TypeError, ValueError):
        return None


def _root_cause(err: BaseException) -> str:
    """The innermost exception's text ("[Errno 111] Connection refused", "Server disconnected …")."""
    seen: set[int] = set()
    cur: BaseException = err
    while True:
        nxt = cur.__cause__ or cur.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(cur))
        cur = nxt
    text = str(cur).strip() or type(cur).__name__
    return _excerpt(f"{type(cur).__name__}: {text}" if text != type(cur).__name__ else text)


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
