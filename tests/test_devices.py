"""explainft.devices.resolve_device: the one device resolution of students, raters and the logit lens."""

from __future__ import annotations

import pytest
import torch

from explainft.devices import compute_dtype, resolve_device
from explainft.errors import ConfigError
from explainft.scoring import load_rater


def test_auto_and_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_an_error_naming_the_key(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as ei:
        resolve_device(device)
    assert ei.value.key == "train.device" and f"{device!r} asked for but CUDA is not available" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        resolve_device(device, key="--device")
    assert ei.value.key == "--device"


def test_cuda_is_this_process_s_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("auto") == "cuda:0" and resolve_device("cuda") == "cuda:0"
    monkeypatch.setenv("LOCAL_RANK", "3")  # one GPU per DDP process
    assert resolve_device("auto") == "cuda:3" and resolve_device("cuda") == "cuda:3"
    assert resolve_device("cuda:1") == "cuda:1"  # an explicit index as given


def test_a_rater_asked_for_cuda_without_it_fails_before_loading(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError) as ei:
        load_rater(tmp_path, device="cuda")
    assert ei.value.key == "device"


@pytest.mark.parametrize(
    "capability, expected",
    [((9, 0), "bfloat16"), ((8, 0), "bfloat16"), ((7, 5), "float16"), ((7, 0), "float16"), ((6, 1), "float16")],
)
def test_the_compute_dtype_follows_the_gpu_s_capability(monkeypatch, capability, expected):
    asked = []

    def capability_of(device=None):
        asked.append(device)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability_of)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulated bf16 counts for nothing
    monkeypatch.setattr(torch.version, "hip", None)
    assert compute_dtype("cuda:1") == expected and asked == ["cuda:1"]  # the device's own capability
    assert compute_dtype("cpu") == "float32"
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert compute_dtype("cuda:0") == "bfloat16"  # ROCm
