"""Prepare-stage throughput.

hh_rlhf_load: our HH-RLHF loader (decode, validate, split on the markers, build
and validate Conversation records, count policies) against the bare minimum a
loader must do (gunzip, json.loads, the same regex split), on 20,000 transcripts.
The ratio is the price of validation and bookkeeping.

sample_topk: hash-keyed top-k sampling of 15,000 of 100,000 conversations
(``heapq.nsmallest``, streaming) against hashing everything and sorting it.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import record  # noqa: E402

from explainft.datasets.base import LoadContext  # noqa: E402
from explainft.datasets.prepare import iter_conversations, sample, sample_key  # noqa: E402
from explainft.records import Conversation, Turn  # noqa: E402

FIXTURE = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "hh_rlhf" / "valid" / "helpful-base" / "train.jsonl"
)
N_LINES = 20_000


@pytest.fixture(scope="module")
def hh_raw(tmp_path_factory) -> Path:
    lines = [x for x in FIXTURE.read_text(encoding="utf-8").splitlines() if x.strip()]
    raw = tmp_path_factory.mktemp("hh") / "raw"
    (raw / "helpful-base").mkdir(parents=True)
    with gzip.open(raw / "helpful-base" / "train.jsonl.gz", "wt", encoding="utf-8") as fh:
        for i in range(N_LINES):
            fh.write(lines[i % len(lines)] + "\n")
    return raw


MARKER = re.compile(r"\n\n(Human|Assistant): ?")


def baseline_hh(raw: Path) -> int:
    n = 0
    with gzip.open(raw / "helpful-base" / "train.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            parts = MARKER.split(json.loads(line)["chosen"])
            n += len(parts) > 2
    return n


def project_hh(raw: Path) -> int:
    it, ctx, _ = iter_conversations("hh_rlhf_chosen", raw)
    return sum(1 for _ in it)


def test_hh_rlhf_load_baseline(benchmark, hh_raw):
    assert benchmark.pedantic(baseline_hh, args=(hh_raw,), rounds=3, iterations=1) == N_LINES
    record(benchmark, "hh_rlhf_load", "baseline")


def test_hh_rlhf_load_project(benchmark, hh_raw):
    assert benchmark.pedantic(project_hh, args=(hh_raw,), rounds=3, iterations=1) == N_LINES
    record(benchmark, "hh_rlhf_load", "project")


@pytest.fixture(scope="module")
def many():
    return [
        Conversation(id=f"d/{i}", dataset="d", turns=(Turn("user", "q"), Turn("assistant", "a")))
        for i in range(100_000)
    ]


def test_sample_topk_baseline(benchmark, many):
    def full_sort():
        return sorted(many, key=lambda c: (sample_key(1, c.id), c.id))[:15_000]

    assert len(benchmark.pedantic(full_sort, rounds=3, iterations=1)) == 15_000
    record(benchmark, "sample_topk", "baseline")


def test_sample_topk_project(benchmark, many):
    picked = benchmark.pedantic(lambda: sample(many, 15_000, 1, LoadContext("d"))[0], rounds=3, iterations=1)
    assert len(picked) == 15_000
    record(benchmark, "sample_topk", "project")
