"""The paper-smoke run's two local stand-ins: the teachers' server and the tiny Hub-format student.

* :func:`script` and :func:`answer` make :class:`fakellm.FakeLLM` play the paper's three teachers over the real
  OpenAI-compatible protocol: a rating request gets a JSON rating (score, assessment, confidence), the
  summariser's request a ``{"text"}`` object, the judge's a ``{"score", "reason"}`` object. Failures are
  scripted by hashes, so every run sees the same ones:

  - every conversation whose hash is 0 mod :data:`REFUSED_EVERY` gets prose without a score from every teacher
    on every prompt: its twelve ratings all fail and ``merge`` drops it (fewer than ``min_valid``), which is
    what the profile's headroom over the split sizes is for;
  - on a prompt's first request, by the hash of the whole chat: an HTTP 500, a 429 with ``Retry-After: 0``, or
    an unparsable reply (each retried by the backend or the parser);
  - a share of summariser and judge requests get a reply that is not the JSON asked for (a counted fallback).

* :func:`build_student` saves a tiny random ``MistralForCausalLM`` and its tokenizer as a Hub-format folder
  (``config.json``, ``model.safetensors``, ``tokenizer.json``), the way a Hub snapshot looks.

From the command line (to run configs/paper-smoke.yaml by hand from the repository root)::

    python tests/paper_smoke.py student inputs/tiny-mistral
    python tests/paper_smoke.py serve --port 18765      # the profile's base_url; serves until killed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakellm import FakeLLM, rate_limit, rating_json, reply, server_error  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "paper-smoke.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "paper_smoke"
PROFILE_URL = "http://127.0.0.1:18765/v1"  # the teachers' base_url in configs/paper-smoke.yaml
BIN = Path(sys.executable).parent

# the paper's teachers' model ids (configs/paper.yaml): the profile keeps them, only the endpoint changes
MODELS = ("amazon.titan-text-premier-v1:0", "mistral.mixtral-8x7b-instruct-v0:1", "mistral.mistral-7b-instruct-v0:2")
REFUSED_EVERY = 27  # one conversation in 27 is refused by every teacher on every prompt (one per dataset at most here)
REFUSAL = "I would rather not put a number on this conversation."
_CONVERSATION = re.compile(r"<<<CONVERSATION [^>]*>>>(.*?)<<<END CONVERSATION", re.S)


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16)


def kind(messages: Any) -> str:
    """``summary``, ``judge`` or ``rating``: what a chat asks for (by its system message)."""
    system = " ".join(m.get("content") or "" for m in messages or [] if m.get("role") == "system")
    if '{"text"' in system:
        return "summary"
    if '"reason"' in system:
        return "judge"
    return "rating"


def answer(messages: Any) -> str:
    """The well-formed answer to a chat of each kind (deterministic: a function of the messages)."""
    what = kind(messages)
    h = _digest(json.dumps(messages, sort_keys=True))
    if what == "summary":
        return json.dumps({"text": f"Combined view {h % 997}: the raters agree the response mostly fits."})
    if what == "judge":
        return json.dumps({"score": h % 5 + 1, "reason": "The ratings mostly agree; the middle view holds."})
    return rating_json(messages)


def refused(messages: Any) -> bool:
    """Whether every teacher refuses to rate this chat's conversation."""
    text = "\n".join(m.get("content") or "" for m in messages or [] if m.get("role") == "user")
    found = _CONVERSATION.findall(text)  # the last fenced conversation is the one to rate (examples come first)
    return bool(found) and _digest(found[-1]) % REFUSED_EVERY == 0


def script(body: Any, n: int):
    """FakeLLM's per-request script (module docstring); ``None``: the well-formed answer."""
    messages = body.get("messages") if isinstance(body, dict) else None
    what = kind(messages)
    if what == "rating" and refused(messages):
        return reply(REFUSAL)
    if n:
        return None  # a retry of a prompt gets its answer
    h = _digest(json.dumps(messages, sort_keys=True)) % 40
    if what != "rating":
        return reply("Here is my summary, in prose rather than JSON.") if h < 4 else None
    if h == 0:
        return server_error(500)
    if h == 1:
        return rate_limit(0)
    if h == 2:
        return reply("The response seems fine overall, I suppose.")
    return None


def server(port: int = 0) -> FakeLLM:
    """The teachers' server (not started)."""
    return FakeLLM(script, answer=answer, port=port, models=MODELS)


def build_student(dest: Path, corpus: list[str] | None = None) -> Path:
    """A tiny Mistral-architecture student as a Hub-format folder at ``dest`` (random weights)."""
    from explainft.annotate.prompts import DEFINITIONS, RUBRICS
    from explainft.students import build_tiny

    texts = list(corpus or [])
    for dim, scales in RUBRICS.items():
        texts += [DEFINITIONS[dim], *(line for lines in scales.values() for line in lines)]
    texts += [f"Score: {k}" for k in range(1, 6)] * 4
    return build_tiny(
        texts,
        dest,
        seed=0,
        vocab_size=600,
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        intermediate=128,
        max_positions=2048,
    )


def fixture_corpus(profile: Path, root: Path) -> list[str]:
    """Text to train the student's tokenizer on: every turn of every conversation the profile's datasets hold,
    read by the project's own loaders from the fixtures (paths in ``profile`` are relative to ``root``)."""
    import yaml

    from explainft.datasets.prepare import iter_conversations

    params = yaml.safe_load(profile.read_text())
    out: list[str] = []
    for name in params["data"]["datasets"]:
        source = params["sources"][name]
        convs, _, _ = iter_conversations(name, root / source["fetch"]["path"], source.get("options"), "skip")
        out += [t.text for c in convs for t in c.turns]
    return out


def run(cmd: list[str], cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """A command of this environment in ``cwd`` (the project's own ``src`` first); raises with its output on failure."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(cwd / "src"))
    env.update(DVC_NO_ANALYTICS="1", GIT_TERMINAL_PROMPT="0")
    p = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def setup_project(tmp: Path, url: str) -> Path:
    """A throwaway git + DVC project at ``tmp/proj`` running configs/paper-smoke.yaml with its teachers at ``url``."""
    proj = tmp / "proj"
    proj.mkdir()
    for name in ("src", "stages", "golden", "human", "paper", "selection", "configs"):
        shutil.copytree(ROOT / name, proj / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, proj / name)
    shutil.copytree(FIXTURES, proj / "tests" / "fixtures" / "paper_smoke")
    shutil.copytree(FIXTURES.parent / "human", proj / "tests" / "fixtures" / "human")
    build_student(proj / "inputs" / "tiny-mistral", fixture_corpus(SMOKE, ROOT))
    (proj / "params.yaml").write_text(SMOKE.read_text().replace(PROFILE_URL, url))
    run(["git", "init", "-q"], proj)
    run(["dvc", "init", "-q"], proj)
    run(["dvc", "config", "core.analytics", "false"], proj)
    return proj


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve the scripted teachers until killed")
    s.add_argument("--port", type=int, default=int(PROFILE_URL.rsplit(":", 1)[1].split("/")[0]))
    b = sub.add_parser("student", help="save the tiny Hub-format student")
    b.add_argument("dest", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "student":
        print(build_student(args.dest, fixture_corpus(SMOKE, ROOT)))
        return
    srv = server(args.port).start()
    print(srv.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
