"""models/dvc.yaml: one DVC model artifact per fine-tune of the profile, kept in step with params.yaml."""

from __future__ import annotations

import shutil

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT

from explainft.artifacts import ARTIFACTS_FILE, HEADER, artifact_name, artifacts, drift, is_current, render, write
from explainft.cli import main as cli
from explainft.config import finetune_config, load_params

FINETUNE_MODEL = "models/finetuned/${item.set}/${item.dimension}/${item.variant}/seed_${item.seed}/model"


def test_models_dvc_yaml_declares_every_fine_tune_of_params_yaml():
    params = load_params(ROOT / "params.yaml")
    assert ARTIFACTS_FILE.as_posix() == "models/dvc.yaml"
    assert is_current(ROOT, params), f"run `explainft artifacts` after changing the grid ({drift(ROOT, params)})"
    text = (ROOT / ARTIFACTS_FILE).read_text()
    assert text.startswith(HEADER) and "explainft artifacts" in HEADER
    declared = yaml.safe_load(text)["artifacts"]
    fc = finetune_config(params)
    assert len(declared) == len(fc.cells()) == 28
    a = declared["chatterbot_perturbed-on_topic-assessment-seed0"]
    # relative to models/, the folder of the file that declares it
    assert a["path"] == "finetuned/chatterbot_perturbed/on_topic/assessment/seed_0/model"
    assert a["type"] == "model" and "dataset:chatterbot_perturbed" in a["labels"]
    assert "variant:shuffle" in declared["mixed-naturalness-shuffle-seed0"]["labels"]
    assert "grid:ablation" in declared["mixed-naturalness-shuffle-seed0"]["labels"]
    # the hand-written dvc.yaml declares no artifacts (only models/dvc.yaml does) and no marker is left in it
    main = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert "artifacts" not in main and "do not edit below" not in (ROOT / "dvc.yaml").read_text()
    # every path is an output of a finetune stage (so `dvc artifacts get` can fetch it)
    outs = [o for name in ("finetune", "finetune_ablation") for o in main["stages"][name]["outs"] if isinstance(o, str)]
    assert outs == [FINETUNE_MODEL] * 2


def test_dvc_reads_models_dvc_yaml_and_resolves_every_artifact_to_a_fine_tune_output():
    """DVC itself (not only YAML): the file is read in the work tree (.gitignore lets DVC walk into models/), and
    ``models:<name>`` resolves to the model folder a finetune stage writes."""
    if not (ROOT / ".git").exists():
        pytest.skip("DVC resolves artifacts through git; not a git checkout")
    from dvc.repo import Repo

    declared = yaml.safe_load((ROOT / ARTIFACTS_FILE).read_text())["artifacts"]
    with Repo(str(ROOT)) as repo:
        read = repo.artifacts.read()
        assert "dvc.yaml" not in read and set(read["models/dvc.yaml"]) == set(declared)
        outs = {str(o.def_path) for s in repo.index.stages for o in s.outs}
        for name, entry in declared.items():
            path = repo.artifacts.get_path(f"models:{name}")
            assert path == f"models/{entry['path']}" and path in outs, name


def test_names_are_valid_for_dvc_and_gto():
    from gto.constants import assert_name_is_valid

    for name in artifacts(load_params(ROOT / "configs" / "paper.yaml")):
        assert_name_is_valid(name)
    assert artifact_name("mixed", "on_topic", "length_25", 1) == "mixed-on_topic-length_25-seed1"
    with pytest.raises(ValueError, match="not a valid DVC artifact name"):
        artifact_name("Mixed set", "on_topic", "none", 0)


def test_use_writes_only_the_generated_file_and_check_catches_drift(tmp_path):
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    hand_written = (tmp_path / "dvc.yaml").read_bytes()
    generated = tmp_path / ARTIFACTS_FILE
    assert not generated.exists()
    runner = CliRunner()
    r = runner.invoke(cli, ["use", "paper", "--root", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "models/dvc.yaml artifacts: 96 models" in r.output
    assert (tmp_path / "dvc.yaml").read_bytes() == hand_written  # the stages are untouched, byte for byte
    text = generated.read_text()
    assert text == render(load_params(tmp_path / "params.yaml")) and text.startswith(HEADER)
    declared = yaml.safe_load(text)["artifacts"]
    assert len(declared) == 7 * 3 * 4 + 12 and "coqa-comprehensiveness-both-seed0" in declared
    assert "student:mistralai/Mistral-7B-v0.1" in declared["coqa-comprehensiveness-both-seed0"]["labels"]
    ok = runner.invoke(cli, ["artifacts", "--check", "--root", str(tmp_path)])
    assert ok.exit_code == 0 and "models/dvc.yaml artifacts: up to date" in ok.output, ok.output
    # a grid changed by hand (or by `dvc exp run -S`) without regenerating: --check fails and says what to run
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["train"]["sets"] = ["mixed"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad = runner.invoke(cli, ["artifacts", "--check", "--root", str(tmp_path)])
    assert bad.exit_code != 0 and "explainft artifacts" in bad.output and "models/dvc.yaml" in bad.output
    assert generated.read_text() == text  # --check writes nothing
    assert runner.invoke(cli, ["artifacts", "--root", str(tmp_path)]).exit_code == 0
    assert len(yaml.safe_load(generated.read_text())["artifacts"]) == 1 * 3 * 4 + 12
    assert (tmp_path / "dvc.yaml").read_bytes() == hand_written
    # a missing generated file is drift too
    generated.unlink()
    gone = runner.invoke(cli, ["artifacts", "--check", "--root", str(tmp_path)])
    assert gone.exit_code != 0 and "missing" in gone.output


def test_an_artifacts_section_in_the_hand_written_dvc_yaml_fails_the_check_and_is_never_touched(tmp_path):
    params = load_params(ROOT / "params.yaml")
    main = tmp_path / "dvc.yaml"
    main.write_text("stages: {}\nartifacts:\n  mine: {path: x, type: model}\n")
    assert write(tmp_path, params) == 28
    assert main.read_text() == "stages: {}\nartifacts:\n  mine: {path: x, type: model}\n"
    assert not is_current(tmp_path, params)
    assert "declares artifacts: of its own" in drift(tmp_path, params)
    main.write_text("stages: {}\n")
    assert is_current(tmp_path, params)
