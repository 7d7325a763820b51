"""The Bedrock backend over real HTTP: the paper's three teachers exactly as configs/paper.yaml names them, pointed
(``options.endpoint_url``) at fakellm's Converse stand-in. botocore builds, signs and sends the requests, retries
throttling and server errors, and parses the replies and error bodies; the annotate and merge stages run on them.

What only unit tests cover (tests/test_local_backends.py, botocore's Stubber): the error codes Bedrock itself
returns (AccessDenied, ValidationException on a system prompt, ...) and the credential chain's preflight; no
stand-in here plays AWS's own services."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from fakellm import FakeLLM, rate_limit, server_error

from explainft.errors import ConfigError
from explainft.records import Conversation, Rating, Turn, read_jsonl, write_jsonl

boto3 = pytest.importorskip("boto3")


@pytest.fixture
def aws(monkeypatch, tmp_path):
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def paper_params(tmp: Path, endpoint: str) -> dict:
    params = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    params["data"]["datasets"] = ["coqa"]
    for t in params["annotate"]["teachers"]:
        assert t["backend"] == "bedrock"
        t["options"] = {**t["options"], "endpoint_url": endpoint, "max_retries": 3}
    params["annotate"]["cache"] = str(tmp / "cache.sqlite")
    return params


def conversations(n: int) -> list[Conversation]:
    return [
        Conversation(
            id=f"coqa/{i}",
            dataset="coqa",
            turns=(
                Turn("user", f"Where did the fox in story {i} hide?"),
                Turn("assistant", f"It hid under the old bridge by the river, as story {i} says."),
            ),
        )
        for i in range(n)
    ]


def test_the_paper_teachers_annotate_and_merge_through_the_converse_stand_in(aws, tmp_path):
    from paper_smoke import answer

    from explainft.stages.annotate import run as annotate
    from explainft.stages.merge import run as merge

    with FakeLLM(answer=answer) as llm:
        # a throttle and a server error first: botocore's retries recover from both
        llm.push(rate_limit(0), server_error(500))
        params = paper_params(tmp_path, llm.root)
        write_jsonl(tmp_path / "data" / "prepared" / "coqa.jsonl", conversations(3))
        stats = annotate(params, "coqa", tmp_path)
        merged = merge(params, "coqa", tmp_path)
        requests = list(llm.requests)
    ratings = list(read_jsonl(tmp_path / "data" / "annotated" / "coqa.jsonl", Rating))
    assert len(ratings) == 3 * 3 * 4 * 3 and stats["ok"] == len(ratings)
    assert {r.body["model"] for r in requests} == {t["model"] for t in params["annotate"]["teachers"]}
    # the paper's teachers take no system prompt through Converse: it is folded into the first user turn
    rating = next(r for r in requests if r.action == "reply")
    sent = rating.body["converse"]
    assert "system" not in sent and sent["messages"][0]["role"] == "user"
    assert sent["inferenceConfig"] == {"maxTokens": 512, "temperature": 0.0}
    assert rating.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "bedrock" in rating.headers["authorization"]
    assert [r.action for r in requests[:2]] == ["status", "status"]
    # merge: the paper's average and Mixtral's summaries, through the same endpoint
    assert merged["explanation_method"] == "llm" and merged["llm_calls"]["summary_assessment"] == 3 * 3
    assert merged["n_items"] == 3 * 3


def test_a_bedrock_error_after_retries_names_the_model_and_endpoint(aws, tmp_path):
    from explainft.annotate.backends.bedrock import BedrockBackend
    from explainft.annotate.base import BackendError
    from explainft.config import annotate_config

    with FakeLLM([server_error(500)] * 10) as llm:
        cfg = annotate_config(paper_params(tmp_path, llm.root))
        teacher = cfg.teachers[0]
        backend = BedrockBackend(teacher)
        with pytest.raises(BackendError) as e:
            backend.complete([{"role": "user", "content": "Rate this."}])
        assert len(llm.requests) == 4  # the first try and three retries
    msg = str(e.value)
    assert "InternalServerException" in msg and teacher.model in msg and llm.root in msg


@pytest.mark.parametrize("bad", ["localhost:8000", "ftp://x", "http://key:secret@host", 5])
def test_a_bad_endpoint_url_is_a_config_error(aws, tmp_path, bad):
    from explainft.annotate.backends.bedrock import BedrockBackend
    from explainft.config import annotate_config

    params = paper_params(tmp_path, "http://127.0.0.1:1")
    params["annotate"]["teachers"][0]["options"]["endpoint_url"] = bad
    with pytest.raises(ConfigError) as e:
        BedrockBackend(annotate_config(params).teachers[0])
    assert "endpoint_url" in str(e.value)
