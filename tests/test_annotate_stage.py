"""The annotate and merge stages end to end against a real local OpenAI-compatible server.

SIGKILL mid-run then rerun: no stored reply is requested again and the records
equal those of an uninterrupted run. A canary API key reaches the server and no file.
A teacher that fails wholesale stops the stage without output, and the rerun asks
only for what failed; a teacher that cannot work at all (no key, no server, no
such model) stops it before its first request; a fully cached rerun needs neither.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from fakellm import FakeLLM

from explainft.records import Conversation, Item, Rating, Turn, read_jsonl, write_jsonl

pytestmark = pytest.mark.slow

CANARY = "sk-canary-7f3a9c2e5d1b4a68"
N_CONVS = 6
PER_CONV = 3 * 4  # dimensions × prompts, one teacher


def teacher(url: str, name: str = "local-llm", model: str = "fake-7b", max_retries: int = 1) -> dict:
    return {
        "name": name,
        "backend": "openai",
        "model": model,
        "sampling": {"temperature": 0.0, "max_tokens": 200},
        "options": {
            "base_url": url,
            "api_key_env": "EXPLAINFT_TEST_KEY",
            "concurrency": 2,
            "timeout": 10,
            "max_retries": max_retries,
        },
    }


def make_project(
    tmp: Path,
    url: str,
    n_convs: int = N_CONVS,
    max_retries: int = 1,
    teachers: list | None = None,
    max_failed_share: float | None = None,
) -> Path:
    proj = tmp
    proj.mkdir(parents=True, exist_ok=True)
    convs = [
        Conversation(
            id=f"demo/{i}",
            dataset="demo",
            turns=(
                Turn("user", f"How do I water plant number {i}?"),
                Turn("assistant", f"Water plant {i} once a week, more often in summer."),
            ),
        )
        for i in range(n_convs)
    ]
    write_jsonl(proj / "data" / "prepared" / "chatterbot.jsonl", convs)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["datasets"] = ["chatterbot"]
    params["annotate"]["teachers"] = teachers or [teacher(url, max_retries=max_retries)]
    params["annotate"]["cache"] = "cache/annotate.sqlite"
    if max_failed_share is not None:
        params["annotate"]["max_failed_share"] = max_failed_share
    params["merge"] = {"score": "average", "explanation": "extractive", "min_valid": 1}
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return proj


def stage(proj: Path, name: str, key: str | None = CANARY, **kw) -> subprocess.Popen:
    """Run stage ``name`` on chatterbot; ``key`` is $EXPLAINFT_TEST_KEY (None: unset)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("EXPLAINFT_TEST_KEY", None)
    if key is not None:
        env["EXPLAINFT_TEST_KEY"] = key
    return subprocess.Popen(
        [sys.executable, str(ROOT / "stages" / f"{name}.py"), "chatterbot"],
        cwd=proj,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def finish(p: subprocess.Popen) -> str:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, f"stage failed:\n{out}\n{err}"
    return out + err


def fails(p: subprocess.Popen) -> str:
    """The stage's error message (stderr), asserting it exited 1."""
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, f"stage should have failed:\n{out}\n{err}"
    return err


def no_output(proj: Path) -> bool:
    return not (proj / "data" / "annotated").exists() and not (proj / "metrics").exists()


def test_sigkill_then_rerun_sends_no_stored_request_again_and_matches_an_uninterrupted_run(tmp_path):
    total = N_CONVS * PER_CONV
    with FakeLLM(delay=0.03, models=["fake-7b"]) as llm:
        # the uninterrupted run, in its own project with its own cache
        ref = make_project(tmp_path / "ref", llm.url)
        finish(stage(ref, "annotate"))
        assert llm.total == total and llm.model_lists == 1  # one preflight, no probe
        llm.reset()

        proj = make_project(tmp_path / "killed", llm.url)
        p = stage(proj, "annotate")
        deadline = time.time() + 60
        while llm.total < total // 2 and time.time() < deadline:
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        sent_before = llm.total
        assert 0 < sent_before < total, "the kill should land mid-run"
        assert not (proj / "data" / "annotated" / "chatterbot.jsonl").exists()  # nothing half-written

        import sqlite3

        stored = (
            sqlite3.connect(proj / "cache" / "annotate.sqlite").execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        )
        assert stored >= sent_before - 2  # at most `concurrency` replies were in flight at the kill
        out = finish(stage(proj, "annotate"))
        resent = llm.total - sent_before
        assert resent == total - stored  # exactly the replies that were not stored
        assert max(llm.prompt_counts.values()) <= 2
        assert sum(1 for c in llm.prompt_counts.values() if c == 2) == sent_before - stored

    got = (proj / "data" / "annotated" / "chatterbot.jsonl").read_bytes()
    assert got == (ref / "data" / "annotated" / "chatterbot.jsonl").read_bytes()
    ratings = list(read_jsonl(proj / "data" / "annotated" / "chatterbot.jsonl", Rating))
    assert len(ratings) == total and all(r.status == "ok" for r in ratings)
    m = json.loads((proj / "metrics" / "annotate" / "chatterbot.json").read_text())
    assert m["requests_sent"] == resent and m["cache_hits"] == stored and m["ok"] == total
    assert "annotate@chatterbot" in out

    # merge the ratings into items
    finish(stage(proj, "merge"))
    items = list(read_jsonl(proj / "data" / "merged" / "chatterbot.jsonl", Item))
    assert len(items) == N_CONVS * 3
    assert {i.n_valid for i in items} == {4}

    # the canary key reached the server (Authorization header) and no file the pipeline wrote
    assert llm.requests[0].headers["Authorization"] == f"Bearer {CANARY}"
    for path in proj.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), f"API key leaked into {path}"


def test_server_faults_end_as_counted_failed_ratings_with_the_cause(tmp_path):
    from fakellm import server_error

    with FakeLLM(lambda body, n: server_error(503), models=["fake-7b"]) as llm:
        # max_failed_share: 1 accepts any number of failures: they are counted, not fatal
        proj = make_project(tmp_path / "p", llm.url, n_convs=2, max_retries=1, max_failed_share=1.0)
        finish(stage(proj, "annotate"))
        assert llm.total == 2 * PER_CONV * 2  # each request tried twice (max_retries: 1)
    ratings = list(read_jsonl(proj / "data" / "annotated" / "chatterbot.jsonl", Rating))
    assert len(ratings) == 2 * PER_CONV
    assert all(r.status == "failed" and r.raw_score is None and "503" in r.error for r in ratings)
    m = json.loads((proj / "metrics" / "annotate" / "chatterbot.json").read_text())
    assert m["failed"] == 2 * PER_CONV and m["failure_rate"] == 1.0
    assert m["by_teacher_prompt"]["local-llm/scale5"]["failed"] == 2 * 3
    assert m["max_failed_share"] == 1.0
    assert m["by_teacher_prompt_dimension"]["local-llm/scale5/on_topic"] == {
        "n": 2,
        "ok": 0,
        "unparsable": 0,
        "failed": 2,
        "failed_share": 1.0,
    }
    for r in ratings:
        assert CANARY not in r.error


def test_connection_refused_stops_the_stage_before_any_rating_naming_teacher_and_url(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proj = make_project(tmp_path / "p", f"http://127.0.0.1:{port}/v1", n_convs=1, max_retries=0)
    err = fails(stage(proj, "annotate"))
    assert (
        f"Error: annotate@chatterbot: preflight: teacher 'local-llm': GET http://127.0.0.1:{port}/v1/models "
        "(model 'fake-7b') failed after 1 attempt: connection failed: "
    ) in err
    assert "is the server running and reachable at options.base_url?" in err
    assert no_output(proj)


def test_a_teacher_failing_wholesale_stops_the_stage_and_the_rerun_asks_only_for_what_failed(tmp_path):
    import sqlite3

    from fakellm import server_error

    def bad_is_down(body, n):
        return server_error(503) if body["model"] == "fake-13b" else None

    with FakeLLM(bad_is_down, models=["fake-7b", "fake-13b"]) as llm:
        teachers = [
            teacher(llm.url, "good", "fake-7b", max_retries=0),
            teacher(llm.url, "bad", "fake-13b", max_retries=0),
        ]
        proj = make_project(tmp_path / "p", llm.url, n_convs=2, teachers=teachers)
        err = fails(stage(proj, "annotate"))
        assert llm.total == 2 * 2 * PER_CONV  # every request of both teachers was sent once
        first_error = (
            f"teacher 'bad': POST {llm.url}/chat/completions (model 'fake-13b') failed after 1 attempt: "
            "HTTP 503 Service Unavailable: fake error 503; server error (after all retries): check the "
            "server's log, or raise options.max_retries"
        )
        assert (
            "Error: annotate@chatterbot: 12 of 24 teacher × prompt × dimension groups had more failed requests "
            "than annotate.max_failed_share (2%) allows; no output was written:\n"
        ) in err
        for prompt in ("scale4", "scale4_examples", "scale5", "scale5_examples"):
            for dim in ("naturalness", "comprehensiveness", "on_topic"):
                assert (
                    f"  teacher 'bad' prompt {prompt} dimension {dim}: 2 of 2 requests failed (100% > "
                    f"annotate.max_failed_share 2%), 0 unparsable; first error: {first_error}\n"
                ) in err
        assert "teacher 'good'" not in err
        assert (
            "every reply that arrived is kept in the response cache (annotate.cache: cache/annotate.sqlite), "
            "so only the failed requests are sent again"
        ) in err
        assert no_output(proj)  # neither data/annotated nor metrics: DVC caches nothing half-good
        rows = sqlite3.connect(proj / "cache" / "annotate.sqlite").execute("SELECT model FROM responses").fetchall()
        assert rows == [("fake-7b",)] * (2 * PER_CONV)  # the good replies are committed

        # the teacher is back: the rerun sends only the failed requests, each once
        llm.set_script(None)
        llm.reset()
        finish(stage(proj, "annotate"))
        assert llm.total == 2 * PER_CONV
        assert {r.body["model"] for r in llm.requests} == {"fake-13b"}
        assert set(llm.prompt_counts.values()) == {1}
    ratings = list(read_jsonl(proj / "data" / "annotated" / "chatterbot.jsonl", Rating))
    assert len(ratings) == 2 * 2 * PER_CONV and all(r.status == "ok" for r in ratings)
    m = json.loads((proj / "metrics" / "annotate" / "chatterbot.json").read_text())
    assert m["requests_sent"] == 2 * PER_CONV and m["cache_hits"] == 2 * PER_CONV and m["failed"] == 0
    assert m["max_failed_share"] == 0.02
    assert m["by_teacher_prompt_dimension"]["bad/scale4/naturalness"] == {
        "n": 2,
        "ok": 2,
        "unparsable": 0,
        "failed": 0,
        "failed_share": 0.0,
    }


def test_a_missing_key_stops_the_stage_before_any_request(tmp_path):
    with FakeLLM(models=["fake-7b"]) as llm:
        proj = make_project(tmp_path / "p", llm.url, n_convs=1)
        err = fails(stage(proj, "annotate", key=None))
        assert llm.total == 0 and llm.model_lists == 0
    assert (
        "Error: annotate@chatterbot: preflight: teacher 'local-llm': the environment variable "
        "$EXPLAINFT_TEST_KEY "
        "(annotate.teachers[local-llm].options.api_key_env) is unset or empty; export the API key for "
        f"{llm.url} in it, or remove options.api_key_env if the server takes no key"
    ) in err
    assert no_output(proj)


def test_a_model_the_server_does_not_serve_stops_the_stage_naming_what_it_serves(tmp_path):
    from fakellm import status

    def only_other(body, n):
        if body["model"] != "other-model":
            return status(404, body={"error": {"message": f"The model `{body['model']}` does not exist."}})
        return None

    with FakeLLM(only_other, models=["other-model"]) as llm:
        proj = make_project(tmp_path / "p", llm.url, n_convs=1)
        err = fails(stage(proj, "annotate"))
        assert llm.total == 1  # the one-token probe, nothing else
    assert (
        f"Error: annotate@chatterbot: preflight: teacher 'local-llm': model 'fake-7b' is not served by "
        f"{llm.url}: "
        f"GET {llm.url}/models lists 'other-model', and a one-token chat completion with it was refused "
        "(HTTP 404: The model `fake-7b` does not exist.); set annotate.teachers[local-llm].model to a served id"
    ) in err
    assert no_output(proj)


def test_a_fully_cached_rerun_needs_no_key_and_no_server(tmp_path):
    with FakeLLM(models=["fake-7b"]) as llm:
        proj = make_project(tmp_path / "p", llm.url, n_convs=2)
        finish(stage(proj, "annotate"))
    first = (proj / "data" / "annotated" / "chatterbot.jsonl").read_bytes()
    # the server is gone and the key unset: every reply is in the cache, so nothing is checked or sent
    out = finish(stage(proj, "annotate", key=None))
    assert (proj / "data" / "annotated" / "chatterbot.jsonl").read_bytes() == first
    m = json.loads((proj / "metrics" / "annotate" / "chatterbot.json").read_text())
    assert m["requests_sent"] == 0 and m["cache_hits"] == 2 * PER_CONV
    assert "annotate@chatterbot" in out


def test_the_golden_stage_applies_the_same_failed_share_check(tmp_path, monkeypatch):
    """run_golden annotates through annotate_conversations: a failing teacher stops it before anything is written."""
    import shutil

    from fakellm import server_error

    from explainft.annotate.engine import FailedShareError
    from explainft.stages.golden import run as run_golden

    (tmp_path / "golden").mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "golden" / "valid.jsonl", tmp_path / "golden" / "set.jsonl")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    with FakeLLM(lambda body, n: server_error(503), models=["fake-7b"]) as llm:
        params["annotate"]["teachers"].append(teacher(llm.url, max_retries=0))
        params["annotate"]["cache"] = str(tmp_path / "cache.sqlite")
        params["golden"]["path"] = "golden/set.jsonl"
        monkeypatch.setenv("EXPLAINFT_TEST_KEY", CANARY)
        with pytest.raises(FailedShareError) as info:
            run_golden(params, root=tmp_path)
    assert {g["teacher"] for g in info.value.groups} == {"local-llm"}
    assert len(info.value.groups) == 4 * 3  # every prompt × dimension of the failing teacher, none of the others
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "reports").exists()
