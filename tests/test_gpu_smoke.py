"""scripts/gpu_smoke.py on the CPU: every check passes, and a deliberately broken check fails the run."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_smoke.py"
CHECKS = ("build", "lora", "score_loss", "one_pass", "logit_lens", "qlora_nf4", "accelerate")

pytestmark = pytest.mark.slow


def smoke(*args: str) -> tuple[subprocess.CompletedProcess, dict[str, tuple[str, str]]]:
    """Run the script on the CPU; (process, {check: (result, detail)}) from its table."""
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", *args], capture_output=True, text=True, timeout=240, cwd=ROOT
    )
    rows = {}
    for line in p.stdout.splitlines():
        cells = [c.strip() for c in line.split(" | ", 3)]
        if len(cells) == 4 and cells[0] in CHECKS:
            rows[cells[0]] = (cells[1], cells[3])
            assert float(cells[2]) >= 0.0
    return p, rows


def test_every_check_passes_on_cpu():
    p, rows = smoke("--steps", "8")
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    header = p.stdout.splitlines()[0]
    for pkg in ("torch", "transformers", "peft", "accelerate", "bitsandbytes"):
        assert pkg in header
    assert list(rows) == list(CHECKS)
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    for name, (result, detail) in rows.items():
        if name == "qlora_nf4" and not has_bnb:
            assert result == "skipped" and "bitsandbytes not importable" in detail
        else:
            assert result == "ok", (name, detail)
    # the accelerate row ran `accelerate launch --num_processes 1` and read a finite loss back from it
    detail = rows["accelerate"][1]
    assert "exit 0" in detail and "processes=1" in detail
    assert math.isfinite(float(detail.split("loss=")[1].split()[0]))
    assert "Linear4bit" in rows["qlora_nf4"][1] or not has_bnb
    assert p.stdout.rstrip().endswith("all ok")


@pytest.mark.parametrize("check", ["logit_lens", "score_loss"])
def test_a_broken_check_fails_the_run(check):
    p, rows = smoke("--only", check, "--perturb", "lens" if check == "logit_lens" else "score_loss")
    assert p.returncode == 1, p.stdout + p.stderr[-3000:]
    assert rows[check][0] == "FAIL"
    assert rows["build"][0] == "ok" and rows["accelerate"][0] == "skipped"
    assert f"FAILED: {check}" in p.stdout


def test_cuda_asked_without_cuda_is_a_usage_error():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU visible, on any machine
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cuda"], capture_output=True, text=True, timeout=120, env=env
    )
    assert p.returncode == 2 and "CUDA is not available" in p.stderr
