"""The paper-smoke fixtures (tests/fixtures/paper_smoke): the six paper datasets in their published formats,
read by the project's own local fetch and prepare stages with configs/paper.yaml's loader options.

The counts below are what the fixtures give; each dataset needs at least 30 items (train 8 + validation 3 +
test 5 per dataset, with per_dataset 24). The malformed and edge-case rows are deliberate (README.md there).
"""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from conftest import FIXTURES, ROOT

from explainft.stages import download, prepare

SMOKE = FIXTURES / "paper_smoke"

# The fixtures as configs/paper-smoke.yaml reads them (paths relative to the repository root, like every
# `from: local` path under DVC); its options are configs/paper.yaml's.
SOURCES = yaml.safe_load((ROOT / "configs" / "paper-smoke.yaml").read_text())["sources"]
COQA_FINAL = {**SOURCES["coqa"]["options"], "items": "final"}

# (dataset, options, conversations, source records, skipped, dropped)
EXPECTED = [
    (
        "chatbot_arena",
        None,
        44,
        25,
        {"last_turn_not_response": 1},
        {"empty_conversation": 1, "language": 1, "null_content": 1},
    ),
    ("hh_rlhf_chosen", None, 40, 43, {"bad_json": 1, "missing_field": 1}, {"empty_final_response": 1}),
    ("hh_rlhf_rejected", None, 41, 43, {"bad_json": 1, "missing_field": 1}, {}),
    (
        "amazonqa",
        None,
        32,
        37,
        {"bad_json": 1, "bad_value": 1, "wrong_type": 1},
        {"no_answers": 1, "only_empty_answers": 1},
    ),
    ("coqa", None, 101, 20, {"empty_turn": 1, "turn_mismatch": 1}, {}),
    ("coqa", COQA_FINAL, 18, 20, {"empty_turn": 1, "turn_mismatch": 1}, {}),
    (
        "cornell_movie_dialogs",
        None,
        36,
        39,
        {"bad_literal": 1, "unknown_line": 1, "wrong_field_count": 1},
        {"too_short": 1},
    ),
]

PER_DATASET = 24  # train 8 + validation 3 + test 5 = 16, plus headroom


def _params(name: str, options: dict | None) -> dict:
    source = dict(SOURCES[name])
    if options is not None:
        source["options"] = options
    return {
        "data": {"datasets": [name], "per_dataset": PER_DATASET, "seed": 20251103, "on_error": "skip"},
        "sources": {name: source},
    }


@pytest.mark.parametrize(
    "name, options, conversations, records, skipped, dropped",
    EXPECTED,
    ids=[f"{e[0]}-{(e[1] or SOURCES[e[0]]['options']).get('items', 'paper')}" for e in EXPECTED],
)
def test_each_fixture_through_local_fetch_and_prepare(
    tmp_path, monkeypatch, name, options, conversations, records, skipped, dropped
):
    monkeypatch.chdir(ROOT)  # local paths are relative to the repository root, as under DVC
    params = _params(name, options)
    manifest = download.run(params, name, root=tmp_path)
    assert manifest["from"] == "local"
    metrics = prepare.run(params, name, root=tmp_path)
    assert metrics["conversations"] == conversations >= 12
    if (options or SOURCES[name]["options"]).get("items") != "final":
        assert conversations >= 30
    assert metrics["source_records"] == records
    assert metrics["skipped"] == skipped
    assert metrics["dropped"] == dropped
    assert metrics["sampled"] == min(PER_DATASET, conversations)


def test_the_options_are_configs_paper_yaml_s():
    """The smoke profile changes sizes and endpoints only: each dataset's options are the paper profile's."""
    paper = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text(encoding="utf-8"))["sources"]
    for name, source in SOURCES.items():
        if name == "coqa":
            assert paper[name]["options"] in (source["options"], COQA_FINAL)
        else:
            assert paper[name]["options"] == source["options"], name


def test_hh_rlhf_chosen_and_rejected_are_twins(tmp_path):
    from conftest import load

    chosen, _ = load("hh_rlhf_chosen", SMOKE / "hh_rlhf", on_error="skip")
    rejected, _ = load("hh_rlhf_rejected", SMOKE / "hh_rlhf", on_error="skip")
    assert all(c.meta["shared_prefix"] for c in chosen + rejected)
    by_line = {(c.meta["subset"], c.meta["source"]["line"]): c for c in rejected}
    for c in chosen:
        twin = by_line[(c.meta["subset"], c.meta["source"]["line"])]
        assert twin.group == c.group and twin.turns[:-1] == c.turns[:-1] and twin.response != c.response


def test_the_build_script_reproduces_the_committed_files(tmp_path):
    spec = importlib.util.spec_from_file_location("paper_smoke_build", SMOKE / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    written = build.build(tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in written}
    committed = {
        p.relative_to(SMOKE).as_posix(): p.read_bytes()
        for name in build.DATASETS
        for p in sorted((SMOKE / name).rglob("*"))
        if p.is_file()
    }
    assert sorted(fresh) == sorted(committed)
    changed = [rel for rel in fresh if fresh[rel] != committed[rel]]
    assert not changed, f"run tests/fixtures/paper_smoke/build.py: these differ from its output: {changed}"
    assert sum(map(len, committed.values())) < 300 * 1024
