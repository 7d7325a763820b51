"""The paper-smoke run's wall time (target: under 8 minutes on two cores; tests/test_paper_smoke.py runs it in CI).

paper_smoke: ``dvc repro`` of configs/paper-smoke.yaml in a fresh throwaway project (the six datasets from the
fixtures, the scripted teachers' server, the tiny NF4 student: 40 stages), one round. Against the same project's
second ``dvc repro`` in the same run, with nothing changed (every stage checked and skipped): the ratio is what the
stages' work costs over DVC's own bookkeeping of the same graph. The per-stage seconds (from the start and end of
each stage in the log) are printed and written to ``.benchmarks/paper_smoke.json``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from conftest import RESULTS, record  # noqa: E402
from paper_smoke import run, server, setup_project  # noqa: E402


def ran(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


def test_paper_smoke(benchmark, tmp_path):
    srv = server().start()
    try:
        proj = setup_project(tmp_path, srv.url)
        out: dict[str, object] = {}

        def repro():
            t0 = time.perf_counter()
            p = run(["dvc", "repro"], proj, timeout=1800)
            out["log"], out["seconds"] = p.stdout, time.perf_counter() - t0

        benchmark.pedantic(repro, rounds=1, iterations=1)
        record(benchmark, "paper_smoke", "project")
        stages = ran(str(out["log"]))
        t0 = time.perf_counter()
        second = run(["dvc", "repro"], proj)
        noop = time.perf_counter() - t0
        assert ran(second.stdout) == set()
    finally:
        srv.stop()
    RESULTS["paper_smoke"]["baseline"] = noop
    figures = {"stages": len(stages), "repro_s": round(float(out["seconds"]), 1), "noop_repro_s": round(noop, 1)}
    print(f"\npaper-smoke: {figures}")
    Path(".benchmarks").mkdir(exist_ok=True)
    Path(".benchmarks/paper_smoke.json").write_text(json.dumps(figures, indent=2) + "\n")
    assert "report" in stages
