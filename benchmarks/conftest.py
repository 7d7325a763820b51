"""Benchmarks compare the project's code with a named baseline in the same run and report the ratio.

Each benchmark records its mean time in RESULTS under (group, role); at the end of
the session the ratio project/baseline of every group is printed and written to
.benchmarks/ratios.json (figures for BENCHMARKS.md).
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS: dict[str, dict[str, float]] = {}


def record(benchmark, group: str, role: str) -> None:
    RESULTS.setdefault(group, {})[role] = benchmark.stats.stats.mean


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    out = {}
    terminalreporter.section("ratios (project / baseline, mean time)")
    for group, roles in sorted(RESULTS.items()):
        if {"project", "baseline"} <= set(roles):
            ratio = roles["project"] / roles["baseline"]
            out[group] = {"project_s": roles["project"], "baseline_s": roles["baseline"], "ratio": ratio}
            terminalreporter.write_line(
                f"{group}: project {roles['project'] * 1e3:.1f} ms, "
                f"baseline {roles['baseline'] * 1e3:.1f} ms, ratio {ratio:.2f}"
            )
    Path(".benchmarks").mkdir(exist_ok=True)
    Path(".benchmarks/ratios.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
