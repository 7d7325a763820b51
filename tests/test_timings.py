"""Outputs hold nothing run- or host-dependent: timings go to timings/<metrics path>.json (explainft.timings),
and a student folder is recorded without this host's absolute path."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import ROOT

from explainft.timings import read_timings, split_timings, timings_path, write_timings

# a key that names a wall-clock figure, as the Trainer and this project spell them
TIMING_KEY = re.compile(r"seconds|per_second|runtime|_time$|_s$|lens_cost")


def timing_keys(obj, where: str = "") -> list[str]:
    """Every key, at any depth of a JSON document, that names a timing (as ``path.to.key``)."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            here = f"{where}.{k}" if where else k
            if TIMING_KEY.search(k):
                found.append(here)
            found += timing_keys(v, here)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += timing_keys(v, f"{where}[{i}]")
    return found


def test_timings_mirror_the_metrics_path_and_round_to_microseconds(tmp_path):
    assert (
        timings_path(tmp_path, "train/mixed/on_topic/none/seed_0")
        == tmp_path / "timings/train/mixed/on_topic/none/seed_0.json"
    )
    out = write_timings(
        tmp_path,
        "analysis",
        {
            "lens_seconds": 1.23456789,
            "n": 3,
            "ratio": None,
            "backends": {"t": {"load_s": 0.0000004, "generate_s": 2.5}},
        },
    )
    assert out == {
        "lens_seconds": 1.234568,
        "n": 3,
        "ratio": None,
        "backends": {"t": {"load_s": 0.0, "generate_s": 2.5}},
    }
    assert (tmp_path / "timings/analysis.json").read_text() == json.dumps(out, indent=2, sort_keys=True) + "\n"
    assert read_timings(tmp_path, "analysis") == out
    assert read_timings(tmp_path, "student") == {}  # never written


@pytest.mark.parametrize("rel", ["", "/etc/x", "../metrics/report", "train/../../x"])
def test_a_timings_path_outside_the_folder_is_refused(tmp_path, rel):
    with pytest.raises(ValueError, match="relative path inside timings/"):
        timings_path(tmp_path, rel)


def test_split_timings_separates_the_named_keys():
    assert split_timings({"loss": 0.5, "seconds": 3.0, "steps": 4}, ("seconds", "steps_per_second")) == (
        {"loss": 0.5, "steps": 4},
        {"seconds": 3.0},
    )


def test_the_student_and_finetune_stages_write_timings_apart_from_their_outputs(tmp_path):
    pytest.importorskip("torch")
    from test_training_stages import make_project

    from explainft.layout import finetune_dir
    from explainft.stages.finetune import run as run_finetune
    from explainft.stages.student import run as run_student
    from explainft.train import TIMING_KEYS

    params = make_project(tmp_path)
    m = run_student(params, tmp_path)
    assert set(m["pretrain"]) == {
        "loss_start",
        "loss_end",
        "steps",
        "tokens",
        "chunks",
        "seq_len",
        "batch_size",
        "lr",
        "seed",
    }
    assert json.loads((tmp_path / "metrics/student.json").read_text()) == m
    st = json.loads((tmp_path / "timings/student.json").read_text())
    assert set(st) == {"pretrain"} and set(st["pretrain"]) == {"seconds", "steps_per_second"}
    assert st["pretrain"]["seconds"] > 0 and st["pretrain"]["steps_per_second"] > 0

    s = run_finetune(params, "chatterbot", "on_topic", "assessment", 0, tmp_path)
    cell = "chatterbot/on_topic/assessment/seed_0"
    assert json.loads((tmp_path / f"metrics/train/{cell}.json").read_text()) == s
    t = json.loads((tmp_path / f"timings/train/{cell}.json").read_text())
    assert set(t) == set(TIMING_KEYS) and all(t[k] > 0 for k in TIMING_KEYS)
    model = finetune_dir(tmp_path, "chatterbot", "on_topic", "assessment", 0) / "model"
    assert not (model / "trainer_state.json").exists()
    # no output file of the two stages holds a timing key (the Trainer's are *_runtime, *_per_second, ...)
    outputs = [p for top in ("metrics", "models", "plots") for p in sorted((tmp_path / top).rglob("*.json"))]
    assert len(outputs) >= 6
    assert {
        p.relative_to(tmp_path).as_posix(): timing_keys(json.loads(p.read_text()))
        for p in outputs
        if timing_keys(json.loads(p.read_text()))
    } == {}


def test_a_local_teacher_s_seconds_go_to_timings_and_its_counters_to_the_metrics(tmp_path):
    pytest.importorskip("torch")
    from test_local_backends import _build_tiny

    from explainft.records import Conversation, Turn, write_jsonl
    from explainft.stages.annotate import run as run_annotate

    model = _build_tiny(tmp_path / "teacher", "llama")
    convs = [
        Conversation(
            id=f"demo/{i}", dataset="chatterbot", turns=(Turn("user", "Hi?"), Turn("assistant", f"Hello {i}."))
        )
        for i in range(2)
    ]
    write_jsonl(tmp_path / "data/prepared/chatterbot.jsonl", convs)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["datasets"] = ["chatterbot"]
    params["annotate"].update(
        dimensions=["naturalness"],
        prompts=["scale4"],
        max_parse_retries=0,
        cache=str(tmp_path / "cache.sqlite"),
        max_failed_share=1.0,  # the tiny teacher's context (128 positions) refuses every prompt as too long
        teachers=[
            {
                "name": "local",
                "backend": "transformers",
                "model": str(model),
                "sampling": {"max_tokens": 4},
                "options": {"device": "cpu"},
            }
        ],
    )
    m = run_annotate(params, "chatterbot", tmp_path)
    counters = m["backend_stats"]["local"]
    assert set(m["backend_stats"]) == {"local"} and set(counters) == {
        "batches",
        "prompts",
        "prompt_tokens",
        "new_tokens",
        "too_long",
        "failed_batches",
    }
    assert (counters["batches"], counters["new_tokens"], m["failed"]) == (0, 0, 2) and counters["too_long"] >= 2
    assert json.loads((tmp_path / "metrics/annotate/chatterbot.json").read_text()) == m
    assert timing_keys(m) == []
    t = read_timings(tmp_path, "annotate/chatterbot")
    assert set(t) == {"backends"} and set(t["backends"]) == {"local"}
    assert set(t["backends"]["local"]) == {"load_s", "generate_s"}
    assert t["backends"]["local"]["load_s"] > 0 and t["backends"]["local"]["generate_s"] == 0.0  # nothing generated


def test_a_folder_student_is_recorded_relative_or_as_written_never_as_this_host_s_path(tmp_path, monkeypatch):
    """metrics/student.json and models/student/STUDENT.json are DVC outputs: a student folder inside the project
    is recorded relative to it, one outside as params names it (``~`` unexpanded), a Hub id as it is."""
    from test_training_stages import SHA, hub, make_project

    from explainft.stages.student import run as run_student
    from explainft.students import content_revision

    root = tmp_path / "proj"
    root.mkdir()
    params = make_project(root)
    (root / "base").mkdir()
    (root / "base" / "config.json").write_text("{}")
    home = tmp_path / "home"
    (home / "models" / "m").mkdir(parents=True)
    (home / "models" / "m" / "config.json").write_text('{"m": 1}')
    monkeypatch.setenv("HOME", str(home))
    hub(monkeypatch)  # the Hub's answer for the Hub id (no network)
    for spec, recorded, revision in (
        ("base", "base", content_revision(root / "base")),
        (str(root / "base"), "base", content_revision(root / "base")),
        ("~/models/m", "~/models/m", content_revision(home / "models" / "m")),
        ("mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1", SHA),
    ):
        params["train"]["student"] = spec
        m = run_student(params, root)
        assert m == {"student": spec, "source": recorded, "revision": revision}
        marker = {"student": spec, "source": recorded, "revision": revision}
        assert json.loads((root / "models/student/STUDENT.json").read_text()) == marker
        assert json.loads((root / "metrics/student.json").read_text()) == m
