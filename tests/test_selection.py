"""`explainft select`: settings chosen on the validation split, resumable, recorded for the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from test_training_stages import make_project  # noqa: E402

from explainft.errors import ConfigError  # noqa: E402
from explainft.selection import candidates, inputs_digest, load_selections, override, parse_grid, slug, status  # noqa: E402
from explainft.stages.select import select  # noqa: E402
from explainft.stages.student import run as run_student  # noqa: E402


def test_parse_grid_and_candidates():
    grid = parse_grid(["train.score_target=hard,soft", "train.score_weight=1, 5.0"])
    assert grid == {"train.score_target": ["hard", "soft"], "train.score_weight": [1, 5.0]}
    assert candidates(grid) == [
        {"train.score_target": "hard", "train.score_weight": 1},
        {"train.score_target": "hard", "train.score_weight": 5.0},
        {"train.score_target": "soft", "train.score_weight": 1},
        {"train.score_target": "soft", "train.score_weight": 5.0},
    ]
    assert slug({"train.score_target": "soft", "train.epochs": 8}) == "score_target-soft_epochs-8"
    for bad in (["train.epochs"], ["=4"], ["train.epochs="], ["train.epochs=4,4"], []):
        with pytest.raises(ConfigError) as ei:
            parse_grid(bad)
        assert ei.value.key == "--grid"
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["train.epochs=1", "train.epochs=2"])


def test_override_names_an_unknown_key():
    params = {"train": {"epochs": 4, "lora": {"r": 16}}}
    assert override(params, {"train.epochs": 8, "train.lora.r": 4}) == {"train": {"epochs": 8, "lora": {"r": 4}}}
    assert params["train"]["epochs"] == 4  # a copy
    with pytest.raises(ConfigError) as ei:
        override(params, {"train.epoch": 8})
    assert ei.value.key == "train.epoch" and "known: epochs, lora" in str(ei.value)
    with pytest.raises(ConfigError, match="no section 'trian'"):
        override(params, {"trian.epochs": 8})


@pytest.fixture
def proj(tmp_path: Path):
    params = make_project(tmp_path)
    run_student(params, tmp_path)
    return tmp_path, params


def test_select_trains_each_candidate_on_validation_only_and_resumes(proj, monkeypatch):
    root, params = proj
    for s in ("chatterbot", "chatterbot_perturbed"):  # the test split is never read
        for p in (root / "data" / "splits" / s).glob("*/test.jsonl"):
            p.unlink()
    params["train"]["variants"] = ["none", "assessment"]
    seen: list[tuple[str, str, bool]] = []
    grid = {"train.score_weight": [1.0, 5.0]}
    rec = select(
        params,
        "weight",
        grid,
        root=root,
        variants=["none"],
        on_cell=lambda c, cell, r, reused: seen.append((c, cell, reused)),
    )
    assert seen == [
        ("score_weight-1.0", "chatterbot/on_topic/none/seed_0", False),
        ("score_weight-5.0", "chatterbot/on_topic/none/seed_0", False),
    ]
    assert rec["cells"] == ["chatterbot/on_topic/none/seed_0"]
    assert [c["params"] for c in rec["candidates"]] == [{"train.score_weight": 1.0}, {"train.score_weight": 5.0}]
    means = [c["mean_validation_mse"] for c in rec["candidates"]]
    assert rec["chosen"] == rec["candidates"][means.index(min(means))]["params"]
    for c in rec["candidates"]:
        cell = c["cells"]["chatterbot/on_topic/none/seed_0"]
        assert c["mean_validation_mse"] == cell["validation_mse"]
        assert cell["validation_prior_mse"] == pytest.approx(0.25)  # training mean 0.5 against 0 and 1 scores
        assert c["beats_prior"] == int(cell["validation_mse"] < 0.25)
    saved = json.loads((root / "selection" / "weight.json").read_text())
    assert saved == json.loads(json.dumps(rec))
    assert saved["profile_values_when_run"] == {"train.score_weight": params["train"]["score_weight"]}
    assert not list((root / "tmp" / "select" / "weight").glob("*/models/finetuned/*/*/*/*/model"))  # numbers only
    # a rerun trains nothing: every cell's result is kept under a key of its settings and inputs
    import explainft.stages.finetune as ts

    class Retrained(Exception):
        pass

    def refuse(*a, **k):
        raise Retrained("retrained a kept cell")

    monkeypatch.setattr(ts, "run", refuse)
    seen.clear()
    again = select(
        params,
        "weight",
        grid,
        root=root,
        variants=["none"],
        on_cell=lambda c, cell, r, reused: seen.append((c, cell, reused)),
    )
    assert [s[2] for s in seen] == [True, True] and again == rec
    # changed validation data: the kept results no longer apply
    val = root / "data" / "splits" / "chatterbot" / "on_topic" / "validation.jsonl"
    val.write_text("\n".join(val.read_text().splitlines()[:3]) + "\n")
    with pytest.raises(Retrained):
        select(params, "weight", grid, root=root, variants=["none"])


def test_status_tells_whether_the_profile_uses_the_choice_and_the_inputs_are_current(proj):
    root, params = proj
    rec = select(params, "weight", {"train.score_weight": [1.0, 2.0]}, root=root, variants=["none"])
    [loaded] = load_selections(root)
    assert loaded["name"] == "weight"
    chosen = rec["chosen"]["train.score_weight"]
    params["train"]["score_weight"] = chosen
    assert status(loaded, params, root) == {"in_profile": True, "differs": {}, "current": True}
    other = 1.0 if chosen == 2.0 else 2.0
    params["train"]["score_weight"] = other
    st = status(loaded, params, root)
    assert st["in_profile"] is False and st["differs"] == {"train.score_weight": (other, chosen)}
    (root / "data" / "variants" / "chatterbot" / "on_topic" / "none.jsonl").write_text("")
    assert status(loaded, params, root)["current"] is False
    (root / "models" / "student" / "STUDENT.json").unlink()
    assert status(loaded, params, root)["current"] is False


def test_select_refuses_bad_input_before_training(proj, monkeypatch):
    root, params = proj
    import explainft.stages.finetune as ts

    monkeypatch.setattr(ts, "run", lambda *a, **k: pytest.fail("trained despite bad input"))
    with pytest.raises(ConfigError) as ei:
        select(params, "x", {"train.score_target": ["hard", "medium"]}, root=root)
    assert ei.value.key == "train.score_target"
    with pytest.raises(ConfigError) as ei:
        select(params, "x", {"train.epochs": [1]}, root=root, sets=["coqa"])
    assert ei.value.key == "--set"
    with pytest.raises(ConfigError) as ei:
        select(params, "../x", {"train.epochs": [1]}, root=root)
    assert ei.value.key == "name"
    (root / "data" / "splits" / "chatterbot" / "on_topic" / "validation.jsonl").unlink()
    with pytest.raises(ConfigError, match="validation.jsonl is missing: run `dvc repro variants student`"):
        select(params, "x", {"train.epochs": [1]}, root=root)
    (root / "selection").mkdir()
    (root / "selection" / "bad.json").write_text('{"name": "bad"}')
    with pytest.raises(ConfigError, match="not a selection record"):
        load_selections(root)


def test_select_cli(proj):
    from explainft.cli import main

    root, params = proj
    import yaml

    (root / "params.yaml").write_text(yaml.safe_dump(params))
    res = CliRunner().invoke(
        main, ["select", "epochs", "--grid", "train.epochs=1", "--variant", "none", "--root", str(root)]
    )
    assert res.exit_code == 0, res.output
    assert "select epochs: chosen {'train.epochs': 1} -> selection/epochs.json" in res.output
    assert (
        inputs_digest(root, [("chatterbot", "on_topic", "none", 0)])
        == json.loads((root / "selection" / "epochs.json").read_text())["inputs"]
    )
    res = CliRunner().invoke(main, ["select", "epochs", "--grid", "train.epoch=1", "--root", str(root)])
    assert res.exit_code == 1 and "train.epoch: the profile has no key 'epoch' in train" in res.output
