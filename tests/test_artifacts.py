"""dvc.yaml's artifacts: one model per fine-tune of the profile, kept in step with params.yaml."""

from __future__ import annotations

import shutil

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT

from explainft.artifacts import MARKER, artifact_name, artifacts, is_current, write
from explainft.cli import main as cli
from explainft.config import finetune_config, load_params


def test_dvc_yaml_declares_every_fine_tune_of_params_yaml():
    params = load_params(ROOT / "params.yaml")
    assert is_current(ROOT / "dvc.yaml", params), "run `explainft artifacts` after changing the grid"
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["artifacts"]
    fc = finetune_config(params)
    assert len(declared) == len(fc.cells()) == 28
    a = declared["chatterbot_perturbed-on_topic-assessment-seed0"]
    assert a["path"] == "models/finetuned/chatterbot_perturbed/on_topic/assessment/seed_0/model"
    assert a["type"] == "model" and "dataset:chatterbot_perturbed" in a["labels"]
    assert "variant:shuffle" in declared["mixed-naturalness-shuffle-seed0"]["labels"]
    # every path is an output of a finetune stage (so `dvc artifacts get` can fetch it)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = [o for name in ("finetune", "finetune_ablation") for o in stages[name]["outs"] if isinstance(o, str)]
    assert outs == ["models/finetuned/${item.set}/${item.dimension}/${item.variant}/seed_${item.seed}/model"] * 2


def test_names_are_valid_for_dvc_and_gto():
    from gto.constants import assert_name_is_valid

    for name in artifacts(load_params(ROOT / "configs" / "paper.yaml")):
        assert_name_is_valid(name)
    assert artifact_name("mixed", "on_topic", "length_25", 1) == "mixed-on_topic-length_25-seed1"
    with pytest.raises(ValueError, match="not a valid DVC artifact name"):
        artifact_name("Mixed set", "on_topic", "none", 0)


def test_use_rewrites_the_artifacts_and_check_catches_drift(tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    head = (tmp_path / "dvc.yaml").read_text().split(MARKER)[0]
    runner = CliRunner()
    r = runner.invoke(cli, ["use", "paper", "--root", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "96 models" in r.output
    text = (tmp_path / "dvc.yaml").read_text()
    assert text.split(MARKER)[0] == head  # the stages are untouched
    declared = yaml.safe_load(text)["artifacts"]
    assert len(declared) == 7 * 3 * 4 + 12 and "coqa-comprehensiveness-both-seed0" in declared
    assert "student:mistralai/Mistral-7B-v0.1" in declared["coqa-comprehensiveness-both-seed0"]["labels"]
    ok = runner.invoke(cli, ["artifacts", "--check", "--root", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    # a grid changed by hand (or by `dvc exp run -S`) without regenerating: --check fails and says what to run
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["train"]["sets"] = ["mixed"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad = runner.invoke(cli, ["artifacts", "--check", "--root", str(tmp_path)])
    assert bad.exit_code != 0 and "explainft artifacts" in bad.output
    assert runner.invoke(cli, ["artifacts", "--root", str(tmp_path)]).exit_code == 0
    assert len(yaml.safe_load((tmp_path / "dvc.yaml").read_text())["artifacts"]) == 1 * 3 * 4 + 12


def test_an_unmarked_artifacts_section_is_not_overwritten(tmp_path):
    path = tmp_path / "dvc.yaml"
    path.write_text("stages: {}\nartifacts:\n  mine: {path: x, type: model}\n")
    with pytest.raises(ValueError, match="without the marker"):
        write(path, load_params(ROOT / "params.yaml"))
    assert "mine" in path.read_text()
