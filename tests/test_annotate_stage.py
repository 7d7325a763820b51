"""The annotate and merge stages end to end against a real local OpenAI-compatible server.

SIGKILL mid-run then rerun: no stored reply is requested again and the records
equal those of an uninterrupted run. A canary API key reaches the server and no file.
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


def make_project(tmp: Path, url: str, n_convs: int = N_CONVS, max_retries: int = 1) -> Path:
    proj = tmp
    proj.mkdir(parents=True, exist_ok=True)
    convs = [Conversation(id=f"demo/{i}", dataset="demo",
                          turns=(Turn("user", f"How do I water plant number {i}?"),
                                 Turn("assistant", f"Water plant {i} once a week, more often in summer.")))
             for i in range(n_convs)]
    write_jsonl(proj / "data" / "prepared" / "chatterbot.jsonl", convs)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["datasets"] = ["chatterbot"]
    params["annotate"]["teachers"] = [{
        "name": "local-llm", "backend": "openai", "model": "fake-7b",
        "sampling": {"temperature": 0.0, "max_tokens": 200},
        "options": {"base_url": url, "api_key_env": "EXPLAINFT_TEST_KEY", "concurrency": 2, "timeout": 10,
                    "max_retries": max_retries},
    }]
    params["annotate"]["cache"] = "cache/annotate.sqlite"
    params["merge"] = {"score": "average", "explanation": "extractive", "min_valid": 1}
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return proj


def stage(proj: Path, name: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), EXPLAINFT_TEST_KEY=CANARY)
    return subprocess.Popen([sys.executable, str(ROOT / "stages" / f"{name}.py"), "chatterbot"], cwd=proj, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(p: subprocess.Popen) -> str:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, f"stage failed:\n{out}\n{err}"
    return out + err


def test_sigkill_then_rerun_sends_no_stored_request_again_and_matches_an_uninterrupted_run(tmp_path):
    total = N_CONVS * PER_CONV
    with FakeLLM(delay=0.03) as llm:
        # the uninterrupted run, in its own project with its own cache
        ref = make_project(tmp_path / "ref", llm.url)
        finish(stage(ref, "annotate"))
        assert llm.total == total
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

        stored = sqlite3.connect(proj / "cache" / "annotate.sqlite").execute("SELECT COUNT(*) FROM responses").fetchone()[0]
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

    with FakeLLM(lambda body, n: server_error(503)) as llm:
        proj = make_project(tmp_path / "p", llm.url, n_convs=2, max_retries=1)
        finish(stage(proj, "annotate"))
        assert llm.total == 2 * PER_CONV * 2  # each request tried twice (max_retries: 1)
    ratings = list(read_jsonl(proj / "data" / "annotated" / "chatterbot.jsonl", Rating))
    assert len(ratings) == 2 * PER_CONV
    assert all(r.status == "failed" and r.raw_score is None and "503" in r.error for r in ratings)
    m = json.loads((proj / "metrics" / "annotate" / "chatterbot.json").read_text())
    assert m["failed"] == 2 * PER_CONV and m["failure_rate"] == 1.0
    assert m["by_teacher_prompt"]["local-llm/scale5"]["failed"] == 2 * 3
    for r in ratings:
        assert CANARY not in r.error


def test_connection_refused_fails_each_rating_and_names_the_url(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proj = make_project(tmp_path / "p", f"http://127.0.0.1:{port}/v1", n_convs=1, max_retries=0)
    finish(stage(proj, "annotate"))
    ratings = list(read_jsonl(proj / "data" / "annotated" / "chatterbot.jsonl", Rating))
    assert all(r.status == "failed" and f"127.0.0.1:{port}" in r.error for r in ratings)
