"""CONTRIBUTING.md's worked example: adding a dataset touches only the files the guide lists for it.

A copy of the package gets a new loader (``datasets/toy.py``) and its registry line (``datasets/__init__.py``):
the two source files the guide names under "A dataset loader". The copy then checks a profile that lists the
dataset, downloads it from a local folder and prepares it, with the import contracts still kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

LOADER = '''\
"""A toy dataset for CONTRIBUTING.md's worked example: ``toy.jsonl``, one ``{"id", "user", "assistant"}`` per
line. Every conversation is its own group (the records are unrelated)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from ..records import Conversation, Turn
from .base import LoadContext, require

OPTIONS: dict[str, Any] = {}
RAW_FILES = ["toy.jsonl"]


def load(raw_dir: Path, options: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    path = raw_dir / "toy.jsonl"
    ctx.note_file(path, raw_dir)
    for rec, obj in ctx.jsonl(path):
        with rec:
            turns = (Turn("user", require(obj, "user", str)), Turn("assistant", require(obj, "assistant", str)))
            rec.add(Conversation(id=f"{ctx.dataset}/{require(obj, 'id', str)}", dataset=ctx.dataset, turns=turns))
        yield from rec.take()
'''
REGISTRY_LINE = '        DatasetSpec("toy", "toy", "a toy dataset (CONTRIBUTING.md)"),\n'


def listed_files(section: str) -> set[str]:
    """The source files CONTRIBUTING.md lists under ``### <section>``."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    body = text.split(f"### {section}\n", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"`(src/explainft/[^`]+\.py)`", body))


def test_adding_a_dataset_touches_only_the_listed_files(tmp_path: Path):
    listed = listed_files("A dataset loader")
    assert listed == {"src/explainft/datasets/<module>.py", "src/explainft/datasets/__init__.py"}

    copy = tmp_path / "proj"
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "stages", copy / "stages")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    before = {p.relative_to(copy).as_posix(): p.read_bytes() for p in (copy / "src").rglob("*.py")}

    (copy / "src/explainft/datasets/toy.py").write_text(LOADER)
    registry = copy / "src/explainft/datasets/__init__.py"
    text = registry.read_text()
    anchor = "    ]\n}\n"
    assert anchor in text
    registry.write_text(text.replace(anchor, REGISTRY_LINE + anchor, 1))

    after = {p.relative_to(copy).as_posix(): p.read_bytes() for p in (copy / "src").rglob("*.py")}
    touched = {p for p in after if before.get(p) != after[p]}
    assert touched == {"src/explainft/datasets/toy.py", "src/explainft/datasets/__init__.py"}
    assert {t.replace("toy", "<module>") for t in touched} == listed

    raw = tmp_path / "published"
    raw.mkdir()
    rows = [{"id": str(i), "user": f"question {i}?", "assistant": f"answer {i}."} for i in range(5)]
    (raw / "toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["datasets"] = ["toy"]
    params["sources"] = {"toy": {"fetch": {"from": "local", "path": str(raw)}, "options": {}}}
    params["train"]["sets"] = ["toy"]
    params["ablation"] = {"sets": [], "dimensions": [], "variants": []}
    (copy / "params.yaml").write_text(yaml.safe_dump(params))

    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    explainft = [sys.executable, "-c", "from explainft.cli import main; main()"]
    check = subprocess.run([*explainft, "check", "params.yaml"], cwd=copy, env=env, capture_output=True, text=True)
    assert check.returncode == 0 and "ok (datasets: toy;" in check.stdout, check.stdout + check.stderr
    for stage in ("download", "prepare"):
        run = subprocess.run(
            [sys.executable, f"stages/{stage}.py", "toy"], cwd=copy, env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr
    assert "prepare@toy: 5 of 5 conversations" in run.stdout
    prepared = [json.loads(x) for x in (copy / "data/prepared/toy.jsonl").read_text().splitlines()]
    assert sorted(c["id"] for c in prepared) == [f"toy/{i}" for i in range(5)]
    assert all(c["turns"][-1]["role"] == "assistant" for c in prepared)

    lint = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, textwrap.shorten(lint.stdout, 2000)
