"""explainft.devices.resolve_device: the one device resolution of students, raters and the logit lens."""

from __future__ import annotations

import pytest
import torch

from explainft.devices import resolve_device
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
