"""OpenAICompatBackend against a real local HTTP server (tests/fakellm.py), and the fake server itself.

Retry timings asserted here are the openai client's own (see the backend's module
docstring): Retry-After honoured exactly, otherwise 0.5 * 2**k s minus up to 25 % jitter.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import traceback

import pytest
from fakellm import (
    FakeLLM,
    drop,
    hang,
    prompt_key,
    rate_limit,
    rating_json,
    raw,
    reply,
    server_error,
    spawn,
    status,
    truncated,
)

from explainft.annotate.backends.openai_compat import OpenAICompatBackend
from explainft.annotate.base import BackendError, PreflightError, TeacherConfig, cache_key
from explainft.errors import ConfigError

MESSAGES = [{"role": "system", "content": "Rate the response."}, {"role": "user", "content": "User: hi\nBot: hello"}]
KEY_ENV = "EXPLAINFT_TEST_OPENAI_KEY"
CANARY = "sk-CANARY-7f3a9c2e-do-not-leak-0b1d"


def make(base_url: str, *, sampling: dict | None = None, model: str = "fake-model", **options) -> OpenAICompatBackend:
    opts = {"base_url": base_url, "api_key_env": KEY_ENV, **options}
    return OpenAICompatBackend(
        TeacherConfig(name="t1", backend="openai", model=model, sampling=sampling or {}, options=opts)
    )


def complete(backend: OpenAICompatBackend, messages=MESSAGES) -> str:
    async def go():
        try:
            return await backend.acomplete(messages)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def failure(backend: OpenAICompatBackend, messages=MESSAGES) -> BackendError:
    with pytest.raises(BackendError) as info:
        complete(backend, messages)
    return info.value


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-key-123")


# --------------------------------------------------------------------------- success path


def test_success_sends_key_sampling_and_json_mode():
    sampling = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "seed": 7}
    with FakeLLM([reply('{"score": 3}')]) as llm:
        backend = make(llm.url, sampling=sampling, json_mode=True)
        assert complete(backend) == '{"score": 3}'
        assert llm.total == 1
        rec = llm.last
    assert rec.headers["Authorization"] == "Bearer sk-test-key-123"
    assert rec.body["model"] == "fake-model"
    assert rec.body["messages"] == MESSAGES
    assert {k: rec.body[k] for k in sampling} == sampling
    assert rec.body["response_format"] == {"type": "json_object"}


def test_default_answer_and_no_json_mode_by_default():
    with FakeLLM() as llm:
        assert complete(make(llm.url)) == rating_json(MESSAGES)
        assert "response_format" not in llm.last.body
        assert not {"temperature", "top_p", "max_tokens", "seed"} & set(llm.last.body)


def test_key_read_once_at_construction_and_stand_in_when_unset(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with FakeLLM() as llm:
        backend = make(llm.url)
        monkeypatch.setenv(KEY_ENV, "set-too-late")
        complete(backend)
        assert llm.last.headers["Authorization"] == "Bearer EMPTY"
        complete(make(llm.url))  # a new backend reads the variable again
        assert llm.last.headers["Authorization"] == "Bearer set-too-late"


def test_key_from_the_named_variable_only(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "the-default-variable")
    monkeypatch.setenv("MY_VLLM_KEY", "the-named-variable")
    with FakeLLM() as llm:
        complete(make(llm.url, api_key_env="MY_VLLM_KEY"))
        assert llm.last.headers["Authorization"] == "Bearer the-named-variable"
        backend = OpenAICompatBackend(TeacherConfig("t1", "openai", "m", options={"base_url": llm.url}))
        complete(backend)
        assert llm.last.headers["Authorization"] == "Bearer the-default-variable"


# --------------------------------------------------------------------------- retries (the client's own)


def test_429_with_retry_after_waits_that_long():
    with FakeLLM([rate_limit(retry_after=1), reply("ok")]) as llm:
        t0 = time.monotonic()
        assert complete(make(llm.url)) == "ok"
        elapsed = time.monotonic() - t0
        first, second = llm.requests
    assert llm.total == 2
    assert second.arrived - first.arrived >= 0.95
    assert 0.95 <= elapsed < 2.5
    assert second.headers["x-stainless-retry-count"] == "1"


def test_429_with_retry_after_ms_is_preferred():
    with FakeLLM([rate_limit(retry_after=30, retry_after_ms=200), reply("ok")]) as llm:
        assert complete(make(llm.url)) == "ok"
        first, second = llm.requests
    assert 0.19 <= second.arrived - first.arrived < 1.0


def test_429_without_retry_after_backs_off_exponentially():
    with FakeLLM([rate_limit(), rate_limit(), reply("ok")]) as llm:
        assert complete(make(llm.url)) == "ok"
        a, b, c = (r.arrived for r in llm.requests)
    # 0.5 s then 1 s, each reduced by up to 25 % jitter
    assert 0.36 <= b - a < 0.7
    assert 0.73 <= c - b < 1.3


def test_500_then_success():
    with FakeLLM([server_error(500), reply("ok")]) as llm:
        assert complete(make(llm.url)) == "ok"
        assert llm.total == 2


def test_persistent_503_fails_after_max_retries_plus_one_requests():
    with FakeLLM(lambda body, n: server_error(503)) as llm:
        err = failure(make(llm.url, max_retries=2))
        assert llm.total == 3
    msg = str(err)
    assert f"{llm.url}/chat/completions" in msg and "fake-model" in msg
    assert "HTTP 503 Service Unavailable" in msg and "after 3 attempts" in msg


def test_max_retries_zero_makes_one_request():
    with FakeLLM(lambda body, n: server_error(502)) as llm:
        err = failure(make(llm.url, max_retries=0))
        assert llm.total == 1
    assert "HTTP 502" in str(err) and "after 1 attempt:" in str(err)


def test_client_errors_are_not_retried():
    with FakeLLM(lambda body, n: status(404, body={"error": {"message": "model 'fake-model' not found"}})) as llm:
        err = failure(make(llm.url))
        assert llm.total == 1
    assert "HTTP 404 Not Found: model 'fake-model' not found" in str(err)
    assert "options.base_url" in str(err)


def test_retry_after_beyond_the_client_cap_is_not_retried():
    with FakeLLM(lambda body, n: rate_limit(retry_after=600)) as llm:
        t0 = time.monotonic()
        err = failure(make(llm.url))
        assert time.monotonic() - t0 < 2 and llm.total == 1
    assert "HTTP 429" in str(err) and "120 s cap" in str(err)


def test_connection_refused_names_the_url():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    err = failure(make(url, max_retries=0))
    msg = str(err)
    assert f"{url}/chat/completions" in msg and "fake-model" in msg
    assert "connection failed" in msg and "refused" in msg.lower()


def test_hang_past_timeout_is_retried_then_fails_mentioning_timeout():
    with FakeLLM([hang(3), reply("ok")]) as llm:
        t0 = time.monotonic()
        assert complete(make(llm.url, timeout=0.3, max_retries=1)) == "ok"
        assert time.monotonic() - t0 < 2.0 and llm.total == 2
    with FakeLLM(lambda body, n: hang(3)) as llm:
        t0 = time.monotonic()
        err = failure(make(llm.url, timeout=0.3, max_retries=1))
        assert 0.6 <= time.monotonic() - t0 < 2.5 and llm.total == 2
    assert "timed out" in str(err) and "timeout=0.3s" in str(err) and "after 2 attempts" in str(err)


def test_connection_dropped_is_retried():
    with FakeLLM([drop(), reply("ok")]) as llm:
        assert complete(make(llm.url)) == "ok"
        assert llm.total == 2


def test_truncated_body_is_retried_then_fails():
    with FakeLLM([truncated(), reply("ok")]) as llm:
        assert complete(make(llm.url)) == "ok"
        assert llm.total == 2
    with FakeLLM(lambda body, n: truncated()) as llm:
        err = failure(make(llm.url, max_retries=0))
    assert "connection failed" in str(err) and "complete message body" in str(err)


def test_invalid_json_body_fails_without_retry():
    with FakeLLM(lambda body, n: raw('{"id": "x", "choices": [{"message": {"content": "tru')) as llm:
        err = failure(make(llm.url))
        assert llm.total == 1
    assert "not valid JSON" in str(err) and llm.url in str(err)


def test_error_object_with_status_200_fails():
    with FakeLLM([raw('{"error": {"message": "model is loading"}}')]) as llm:
        err = failure(make(llm.url))
    assert "no 'choices'" in str(err) and "model is loading" in str(err)


@pytest.mark.parametrize(
    "action",
    [
        reply(no_choices=True),
        reply(""),
        raw(
            '{"id": "x", "object": "chat.completion", "created": 0, "model": "m", '
            '"choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": null}}]}'
        ),
    ],
    ids=["no_choices", "empty", "null"],
)
def test_empty_reply_returns_empty_string(action):
    with FakeLLM([action]) as llm:
        assert complete(make(llm.url)) == ""


# --------------------------------------------------------------------------- concurrency, lifecycle


@pytest.mark.parametrize("n", [4, 16])
def test_parallel_calls_overlap(n):
    with FakeLLM(delay=0.2) as llm:
        backend = make(llm.url, concurrency=n)
        assert backend.concurrency == n

        async def go():
            await backend.acomplete(MESSAGES)  # warm: connect once
            t0 = time.monotonic()
            out = await asyncio.gather(*(backend.acomplete([{"role": "user", "content": f"q{i}"}]) for i in range(n)))
            elapsed = time.monotonic() - t0
            await backend.aclose()
            return out, elapsed

        out, elapsed = asyncio.run(go())
        assert llm.max_in_flight == n
    assert out == [rating_json([{"role": "user", "content": f"q{i}"}]) for i in range(n)]
    assert elapsed < 0.2 * 2.5, f"{n} parallel calls of 0.2 s took {elapsed:.2f} s"


def test_backend_survives_successive_event_loops_and_aclose():
    with FakeLLM() as llm:
        backend = make(llm.url)
        assert asyncio.run(backend.acomplete(MESSAGES)) == rating_json(MESSAGES)
        assert asyncio.run(backend.acomplete(MESSAGES)) == rating_json(MESSAGES)  # new loop: new client
        asyncio.run(backend.aclose())
        assert backend._client is None
        assert complete(backend) == rating_json(MESSAGES)


# --------------------------------------------------------------------------- preflight


def preflight(backend: OpenAICompatBackend) -> None:
    async def go():
        try:
            await backend.apreflight()
        finally:
            await backend.aclose()

    asyncio.run(go())


def preflight_failure(backend: OpenAICompatBackend) -> PreflightError:
    with pytest.raises(PreflightError) as info:
        preflight(backend)
    return info.value


def test_preflight_lists_the_models_once_with_the_key_and_sends_no_chat():
    with FakeLLM(models=["other", "fake-model"]) as llm:
        preflight(make(llm.url))
        assert llm.model_lists == 1 and llm.total == 0
        assert llm.model_list_headers[0]["Authorization"] == "Bearer sk-test-key-123"


def test_preflight_fails_at_once_when_the_named_key_variable_is_unset_or_empty(monkeypatch):
    with FakeLLM(models=["fake-model"]) as llm:
        for value in (None, ""):
            if value is None:
                monkeypatch.delenv(KEY_ENV)
            else:
                monkeypatch.setenv(KEY_ENV, value)
            err = preflight_failure(make(llm.url))
            assert str(err) == (
                f"preflight: teacher 't1': the environment variable ${KEY_ENV} "
                "(annotate.teachers[t1].options.api_key_env) is unset or empty; export the API key "
                f"for {llm.url} in it, or remove options.api_key_env if the server takes no key"
            )
        assert llm.model_lists == 0 and llm.total == 0  # nothing was sent


def test_preflight_accepts_the_stand_in_key_when_no_variable_is_named(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeLLM(models=["m"]) as llm:
        preflight(OpenAICompatBackend(TeacherConfig("t1", "openai", "m", options={"base_url": llm.url})))
        assert llm.model_list_headers[0]["Authorization"] == "Bearer EMPTY"


def test_preflight_of_an_unreachable_endpoint_names_the_teacher_and_url():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    err = preflight_failure(make(url, max_retries=0))
    msg = str(err)
    assert msg.startswith(
        f"preflight: teacher 't1': GET {url}/models (model 'fake-model') failed after 1 attempt: connection failed: "
    )
    assert "refused" in msg.lower() and msg.endswith("is the server running and reachable at options.base_url?")


def test_preflight_of_a_model_the_server_does_not_serve_lists_what_it_serves():
    refuse = status(404, body={"error": {"message": "The model `fake-model` does not exist."}})
    with FakeLLM(lambda body, n: refuse, models=["mistral-7b", "mixtral-8x7b"]) as llm:
        err = preflight_failure(make(llm.url))
        assert llm.model_lists == 1 and llm.total == 1  # the listing, then one probe
        assert llm.last.body["max_tokens"] == 1 and llm.last.body["model"] == "fake-model"
    assert str(err) == (
        f"preflight: teacher 't1': model 'fake-model' is not served by {llm.url}: "
        f"GET {llm.url}/models lists "
        "'mistral-7b', 'mixtral-8x7b', and a one-token chat completion with it was refused "
        "(HTTP 404: The model `fake-model` does not exist.); set annotate.teachers[t1].model to a "
        "served id"
    )


def test_preflight_accepts_a_model_the_server_answers_under_another_name():
    # llama.cpp / TGI list their own name and answer any `model`; Ollama lists name:latest
    with FakeLLM(models=["fake-model:latest"]) as llm:
        preflight(make(llm.url))
        assert llm.model_lists == 1 and llm.total == 1 and llm.last.body["max_tokens"] == 1


def test_preflight_without_a_models_route_probes_one_chat_completion():
    with FakeLLM(models=None) as llm:
        preflight(make(llm.url))
        assert llm.model_lists == 0 and llm.total == 1
    with FakeLLM(lambda body, n: status(401, body={"error": {"message": "invalid key"}}), models=None) as llm:
        err = preflight_failure(make(llm.url))
    assert str(err) == (
        f"preflight: teacher 't1': POST {llm.url}/chat/completions (model 'fake-model') failed "
        f"after 1 attempt: HTTP 401 Unauthorized: invalid key; check the API key in ${KEY_ENV}"
    )


# --------------------------------------------------------------------------- the key never leaks


def test_canary_key_appears_in_no_error_log_or_repr(monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, CANARY)
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    def echo_key(body, n):  # a server that echoes the key it was given, as OpenAI's 401 does
        return status(401, body={"error": {"message": f"Incorrect API key provided: {CANARY}"}})

    with FakeLLM(echo_key) as llm:
        backend = make(llm.url, max_retries=0)
        errors.append(failure(backend))
        assert llm.last.headers["Authorization"] == f"Bearer {CANARY}"  # it was sent, so the test means something
    with FakeLLM(lambda body, n: server_error(503)) as llm:
        errors.append(failure(make(llm.url, max_retries=1)))
    with FakeLLM(lambda body, n: hang(2)) as llm:
        errors.append(failure(make(llm.url, timeout=0.2, max_retries=0)))
    errors.append(failure(make(f"http://127.0.0.1:{closed_port()}/v1", max_retries=1)))
    with FakeLLM(echo_key, models=None) as llm:  # the preflight's probe meets the same server
        errors.append(preflight_failure(make(llm.url, max_retries=0)))
    assert "Incorrect API key provided: <redacted>" in str(errors[-1])

    assert "Incorrect API key provided: <redacted>" in str(errors[0])
    assert f"${KEY_ENV}" in str(errors[0])
    for err in errors:
        for text in (str(err), repr(err), "".join(traceback.format_exception(err))):
            assert CANARY not in text
    assert caplog.records, "expected the client's retry logs"
    for record in caplog.records:
        assert CANARY not in record.getMessage() and CANARY not in repr(record.args)
    assert CANARY not in caplog.text
    assert CANARY not in repr(backend) and CANARY not in repr(vars(backend))
    assert CANARY not in repr(backend.identity())


# --------------------------------------------------------------------------- identity


def test_identity_has_no_base_url_and_marks_json_mode():
    a = make("http://127.0.0.1:8000/v1", sampling={"temperature": 0.0})
    b = make("http://gpu-node-7:9000/v1/", sampling={"temperature": 0.0})
    assert (
        a.identity() == b.identity() == {"backend": "openai", "model": "fake-model", "sampling": {"temperature": 0.0}}
    )
    assert cache_key(a.identity(), MESSAGES, 0) == cache_key(b.identity(), MESSAGES, 0)
    j = make("http://127.0.0.1:8000/v1", sampling={"temperature": 0.0}, json_mode=True)
    assert j.identity()["response_format"] == "json_object"
    assert cache_key(j.identity(), MESSAGES, 0) != cache_key(a.identity(), MESSAGES, 0)
    assert b.base_url == "http://gpu-node-7:9000/v1"


def test_defaults():
    backend = make("http://127.0.0.1:8000/v1")
    assert (backend.concurrency, backend.timeout, backend.max_retries, backend.json_mode) == (8, 60.0, 5, False)
    assert OpenAICompatBackend.kind == "openai"


# --------------------------------------------------------------------------- option validation

URL = "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize(
    "options, key",
    [
        ({}, "base_url"),
        ({"base_url": ""}, "base_url"),
        ({"base_url": 8000}, "base_url"),
        ({"base_url": "127.0.0.1:8000/v1"}, "base_url"),
        ({"base_url": "ftp://host/v1"}, "base_url"),
        ({"base_url": URL, "concurrency": 0}, "concurrency"),
        ({"base_url": URL, "concurrency": True}, "concurrency"),
        ({"base_url": URL, "concurrency": "8"}, "concurrency"),
        ({"base_url": URL, "concurrency": 2.5}, "concurrency"),
        ({"base_url": URL, "timeout": 0}, "timeout"),
        ({"base_url": URL, "timeout": -1}, "timeout"),
        ({"base_url": URL, "timeout": "60"}, "timeout"),
        ({"base_url": URL, "timeout": float("nan")}, "timeout"),
        ({"base_url": URL, "max_retries": -1}, "max_retries"),
        ({"base_url": URL, "max_retries": 1.0}, "max_retries"),
        ({"base_url": URL, "json_mode": "yes"}, "json_mode"),
        ({"base_url": URL, "api_key_env": ""}, "api_key_env"),
        ({"base_url": URL, "api_key_env": 3}, "api_key_env"),
        ({"base_url": URL, "base-url": URL}, "base-url"),
        ({"base_url": URL, "retries": 3}, "retries"),
    ],
)
def test_option_errors(options, key):
    teacher = TeacherConfig(name="judge", backend="openai", model="m", options=options)
    with pytest.raises(ConfigError) as info:
        OpenAICompatBackend(teacher)
    assert info.value.key == f"annotate.teachers[judge].options.{key}"


@pytest.mark.parametrize(
    "options, key",
    [
        ({"base_url": URL, "api_key": CANARY}, "api_key"),
        ({"base_url": URL, "api_key_env": CANARY}, "api_key_env"),
        ({"base_url": f"http://user:{CANARY}@127.0.0.1:8000/v1"}, "base_url"),
    ],
)
def test_option_errors_do_not_echo_a_key(options, key):
    with pytest.raises(ConfigError) as info:
        OpenAICompatBackend(TeacherConfig(name="judge", backend="openai", model="m", options=options))
    assert info.value.key == f"annotate.teachers[judge].options.{key}"
    assert CANARY not in str(info.value)


# --------------------------------------------------------------------------- the fake server itself


def test_fake_server_script_function_counts_per_prompt():
    def flaky(body, n):  # every prompt fails once, then gets the default answer
        return server_error(500) if n == 0 else None

    other = [{"role": "user", "content": "other"}]
    with FakeLLM(flaky) as llm:
        backend = make(llm.url)

        async def go():
            out = await asyncio.gather(backend.acomplete(MESSAGES), backend.acomplete(other))
            await backend.aclose()
            return out

        assert asyncio.run(go()) == [rating_json(MESSAGES), rating_json(other)]
        assert llm.total == 4 and llm.count(MESSAGES) == 2 and llm.count(other) == 2
        assert llm.prompt_counts == {prompt_key(MESSAGES): 2, prompt_key(other): 2}
        assert sorted(r.n for r in llm.requests) == [0, 0, 1, 1]
        llm.push(reply("queued"))
        assert complete(backend) == "queued"  # the queue goes before the function
        llm.reset()
        assert llm.total == 0 and llm.stats()["total"] == 0


def test_rating_json_is_deterministic_and_in_range():
    import json

    seen = {json.loads(rating_json([{"role": "user", "content": str(i)}]))["score"] for i in range(200)}
    assert seen == {1, 2, 3, 4}
    assert rating_json(MESSAGES) == rating_json([dict(m) for m in MESSAGES])


def test_spawned_fake_server_in_another_process():
    with spawn(delay=0.01) as server:
        assert complete(make(server.url)) == rating_json(MESSAGES)
        assert server.stats()["total"] == 1
    assert server.proc.poll() is not None
