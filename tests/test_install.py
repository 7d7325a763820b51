"""`make setup`: the CPU path installs the lock as it always did; TORCH=cuXYZ (or nvidia-smi on PATH) installs the
CUDA build of torch from the PyTorch index with its libraries, then the rest of the lock. Dry runs (`make -n`)
with a throwaway stamp: nothing is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

PIP = ".venv/bin/python -m pip install --quiet --disable-pip-version-check"
CPU_LOCK = f"{PIP} --no-deps -r requirements.lock"  # the CPU path, unchanged
TORCH_VERSION = next(
    line.split("==", 1)[1]
    for line in (ROOT / "requirements.lock").read_text().splitlines()
    if line.startswith("torch==")
)


def dry_run(stamp: Path, *args: str, gpu: Path | None = None) -> subprocess.CompletedProcess:
    """`make -n setup` with ``stamp`` as the stamp; ``gpu``: a folder put on PATH holding a fake nvidia-smi (else
    every folder holding one is taken off PATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TORCH", "TORCH_CUDA", "MAKEFLAGS", "MAKELEVEL")}
    path = [d for d in env.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "nvidia-smi").exists()]
    env["PATH"] = os.pathsep.join(([str(gpu)] if gpu else []) + path)
    return subprocess.run(
        ["make", "-n", "setup", f"STAMP={stamp}", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def commands(r: subprocess.CompletedProcess) -> list[str]:
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.splitlines()


@pytest.fixture
def fake_gpu(tmp_path: Path) -> Path:
    folder = tmp_path / "gpu-bin"
    folder.mkdir()
    smi = folder / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI (fake)'\n")
    smi.chmod(0o755)
    return folder


def test_without_a_gpu_setup_installs_the_lock_as_before(tmp_path):
    assert commands(dry_run(tmp_path / ".installed")) == [
        "test -x .venv/bin/python || python3 -m venv .venv",
        CPU_LOCK,
        f"{PIP} --no-deps -e .",
        f"echo cpu > {tmp_path / '.installed'}",
    ]


def test_torch_cu128_installs_the_cuda_build_with_its_libraries_then_the_rest_of_the_lock(tmp_path):
    got = commands(dry_run(tmp_path / ".installed", "TORCH=cu128"))
    assert got == [
        "test -x .venv/bin/python || python3 -m venv .venv",
        f"{PIP} torch=={TORCH_VERSION}+cu128 --index-url https://download.pytorch.org/whl/cu128",
        "grep -v '^torch==' requirements.lock > .venv/requirements-cu128.txt",
        f"{PIP} --no-deps -r .venv/requirements-cu128.txt",
        f"{PIP} --no-deps -e .",
        f"echo cu128 > {tmp_path / '.installed'}",
    ]
    torch_line = got[1]
    assert "--no-deps" not in torch_line  # torch comes WITH its nvidia-* libraries
    assert CPU_LOCK not in got  # and the lock's torch==<version> is never installed over it


def test_nvidia_smi_on_path_picks_cuda_and_torch_cpu_overrides_it(tmp_path, fake_gpu):
    auto = commands(dry_run(tmp_path / ".installed", gpu=fake_gpu))
    assert f"{PIP} torch=={TORCH_VERSION}+cu128 --index-url https://download.pytorch.org/whl/cu128" in auto
    assert commands(dry_run(tmp_path / ".installed", "TORCH=cpu", gpu=fake_gpu))[1] == CPU_LOCK
    other = commands(dry_run(tmp_path / ".installed", "TORCH_CUDA=cu130", gpu=fake_gpu))
    assert f"{PIP} torch=={TORCH_VERSION}+cu130 --index-url https://download.pytorch.org/whl/cu130" in other


def test_the_stamp_records_the_build_and_another_build_reinstalls(tmp_path, fake_gpu):
    stamp = tmp_path / ".installed"
    stamp.write_text("cpu\n")  # newer than requirements.lock and pyproject.toml: up to date
    assert "Nothing to be done" in dry_run(stamp, gpu=fake_gpu).stdout  # the recorded build, GPU or not
    assert commands(dry_run(stamp, "TORCH=cu128"))[1].endswith("--index-url https://download.pytorch.org/whl/cu128")
    stamp.write_text("")  # a stamp from before it recorded the build: up to date unless a build is asked for
    assert "Nothing to be done" in dry_run(stamp).stdout
    assert commands(dry_run(stamp, "TORCH=cpu"))[1] == CPU_LOCK


@pytest.mark.parametrize("torch", ["cuda", "cu", "gpu", "", "cu128 x"])
def test_an_unknown_build_is_refused(tmp_path, torch):
    r = dry_run(tmp_path / ".installed", f"TORCH={torch}")
    assert r.returncode != 0 and f"TORCH={torch}: use cpu, or a CUDA variant of the PyTorch index" in r.stderr


def test_the_lock_header_points_at_the_readme_section():
    header = (ROOT / "requirements.lock").read_text().splitlines()[:4]
    assert all(line.startswith("# ") for line in header) and 'README, "GPU machines"' in " ".join(header)
    assert "\n## GPU machines\n" in (ROOT / "README.md").read_text()
