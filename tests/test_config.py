"""Profiles are checked before anything runs; errors name the key."""

from __future__ import annotations

import copy

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT

from explainft.cli import main as cli
from explainft.config import check_sections, data_config, is_replication, load_params, stats_config
from explainft.errors import ConfigError
from explainft.stages.check import check_profile

DEFAULT = load_params(ROOT / "params.yaml")
HH_RLHF_SHA = "09be8c5bbc57cb3887f3a9732ad6aa7ec602a1fa"  # pinned by stanford-crfm/helm
COQA_SHA = "06bdab84a7255678e96fad3bd4008abe5c14a817"
MISTRAL_SHA = "27d67f1b5f57dc0953326b2601d68371d40ea8da"
PAPER_DATASETS = ["chatbot_arena", "hh_rlhf_chosen", "hh_rlhf_rejected", "amazonqa", "coqa", "cornell_movie_dialogs"]


def edited(change):
    p = copy.deepcopy(DEFAULT)
    change(p)
    return p


def test_default_profile_is_valid_and_matches_its_config_copy():
    cfg = data_config(DEFAULT)
    assert cfg.datasets == ("chatterbot", "chatterbot_perturbed")
    assert cfg.on_error == "skip" and cfg.per_dataset is None
    assert (ROOT / "configs" / "default.yaml").read_text() == (ROOT / "params.yaml").read_text()


def test_profiles_train_what_the_paper_and_the_readme_say():
    from explainft.config import finetune_config

    paper = load_params(ROOT / "configs" / "paper.yaml")
    assert check_profile(paper)["finetunes"] == 7 * 3 * 4 + 12  # + the length and random ablations on Mixed
    fc = finetune_config(paper)
    assert (fc.ablation.sets, fc.ablation.dimensions) == (("mixed",), ("naturalness",))
    assert [v for v in fc.ablation.variants if v.startswith("length_")] == [
        f"length_{n}" for n in (5, 10, 25, 50, 75, 100, 150)
    ]
    assert fc.student == "mistralai/Mistral-7B-v0.1" and fc.method == "lora" and fc.quantization == "auto"
    assert fc.lora == {
        "r": 16,
        "alpha": 32,
        "dropout": 0.05,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    }
    assert fc.train.learning_rate == 5e-5 and fc.train.epochs == 1
    smol = load_params(ROOT / "configs" / "smollm2.yaml")
    assert smol["profile"] == "smollm2" and finetune_config(smol).student == "smollm2"
    assert check_profile(smol)["finetunes"] == 6
    default = finetune_config(DEFAULT)
    assert (default.student, default.method) == ("tiny", "full")
    assert len(default.cells()) == 3 * 3 * 2 + 10 and finetune_config(smol).ablation is None
    # the three profiles share everything before the student
    for section in ("data", "sources", "annotate", "merge"):
        assert smol[section] == DEFAULT[section]


def test_paper_profile_is_valid_and_names_the_six_datasets_at_15000():
    params = load_params(ROOT / "configs" / "paper.yaml")
    cfg = data_config(params)
    assert params["profile"] == "paper"
    assert list(cfg.datasets) == PAPER_DATASETS
    assert cfg.per_dataset == 17000
    fetch = {n: cfg.source(n)["fetch"] for n in cfg.datasets}
    assert fetch["chatbot_arena"]["repo_id"] == "lmsys/chatbot_arena_conversations"
    assert fetch["chatbot_arena"]["revision"] == "1b6335d42a1d2c7e34870c905d03ab964f7f2bd8"
    assert fetch["hh_rlhf_chosen"]["repo_id"] == fetch["hh_rlhf_rejected"]["repo_id"] == "Anthropic/hh-rlhf"
    assert not any("red-team" in f for f in fetch["hh_rlhf_chosen"]["files"])
    assert fetch["coqa"]["repo_id"] == "stanfordnlp/coqa"
    # one item per question-answer prefix: one item per story (7,699) is fewer than the split's 16,000
    assert cfg.source("coqa")["options"]["items"] == "prefixes"
    # a replication: every Hub download pinned to a commit
    assert params["replication"] is True
    assert fetch["hh_rlhf_chosen"]["revision"] == fetch["hh_rlhf_rejected"]["revision"] == HH_RLHF_SHA
    assert fetch["coqa"]["revision"] == COQA_SHA
    stats = stats_config(params)
    assert (stats.tokenizer, stats.tokenizer_revision) == ("mistralai/Mistral-7B-v0.1", MISTRAL_SHA)
    assert params["train"]["student_revision"] == MISTRAL_SHA
    assert fetch["amazonqa"]["from"] == fetch["cornell_movie_dialogs"]["from"] == "url"


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda p: p.update(trian={}), "trian"),
        (lambda p: p["data"].update(per_datset=3), "data.per_datset"),
        (lambda p: p["data"].update(per_dataset="many"), "data.per_dataset"),
        (lambda p: p["data"].update(per_dataset=0), "data.per_dataset"),
        (lambda p: p["data"].update(seed=1.5), "data.seed"),
        (lambda p: p["data"].update(on_error="ignore"), "data.on_error"),
        (lambda p: p["data"].update(datasets="chatterbot"), "data.datasets"),
        (lambda p: p["data"].update(datasets=["chatterbot", "chatterbot"]), "data.datasets"),
        (lambda p: p["sources"].pop("chatterbot"), "sources.chatterbot"),
        (lambda p: p["sources"]["chatterbot"].update(opts={}), "sources.chatterbot.opts"),
        (lambda p: p["sources"]["chatterbot"]["options"].update(min_lines="2"), "sources.chatterbot.options.min_lines"),
        (lambda p: p["sources"]["chatterbot"]["fetch"].update(frm="package"), "sources.chatterbot.fetch.frm"),
    ],
)
def test_bad_profiles_fail_naming_the_key(change, key):
    # the shape of data/sources is config's; names, fetch specs and loader options are checked with the library
    with pytest.raises(ConfigError) as ei:
        check_profile(edited(change))
    assert ei.value.key == key
    assert str(ei.value).startswith(f"params: {key}:")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ConfigError) as ei:
        check_profile(edited(lambda p: p["data"].update(datasets=["chatterbot", "moviez"])))
    msg = str(ei.value)
    assert "'moviez'" in msg
    for name in PAPER_DATASETS + ["chatterbot", "chatterbot_perturbed"]:
        assert name in msg


def test_load_params_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(tmp_path / "list.yaml")


def test_cli_check_and_use(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(cli, ["check", str(ROOT / "params.yaml")])
    assert ok.exit_code == 0 and "ok (datasets: chatterbot, chatterbot_perturbed" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(edited(lambda p: p["data"].update(per_dataset=-1))))
    res = runner.invoke(cli, ["check", str(bad)])
    assert res.exit_code == 1 and "data.per_dataset" in res.output
    # `use` copies a checked profile over params.yaml
    proj = tmp_path / "proj"
    (proj / "configs").mkdir(parents=True)
    (proj / "configs" / "paper.yaml").write_text((ROOT / "configs" / "paper.yaml").read_text())
    (proj / "configs" / "broken.yaml").write_text(bad.read_text())
    (proj / "params.yaml").write_text("profile: before\n")
    res = runner.invoke(cli, ["use", "paper", "--root", str(proj)])
    assert res.exit_code == 0, res.output
    assert (proj / "params.yaml").read_text() == (ROOT / "configs" / "paper.yaml").read_text()
    res = runner.invoke(cli, ["use", "broken", "--root", str(proj)])
    assert res.exit_code == 1 and "data.per_dataset" in res.output
    assert (proj / "params.yaml").read_text() == (ROOT / "configs" / "paper.yaml").read_text()  # untouched
    res = runner.invoke(cli, ["use", "nosuch", "--root", str(proj)])
    assert res.exit_code == 1 and "available: broken, paper" in res.output
    listing = runner.invoke(cli, ["datasets"])
    assert listing.exit_code == 0 and "hh_rlhf_rejected" in listing.output


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda p: p["annotate"].update(dimensions=["naturalness", "fluency"]), "annotate.dimensions"),
        (lambda p: p["annotate"].update(prompts=[]), "annotate.prompts"),
        (lambda p: p["annotate"].update(max_parse_retries=-1), "annotate.max_parse_retries"),
        (lambda p: p["annotate"].update(cache="data/cache.sqlite"), "annotate.cache"),
        (lambda p: p["annotate"].update(max_failed_share=1.5), "annotate.max_failed_share"),
        (lambda p: p["annotate"].update(max_failed_share=-0.01), "annotate.max_failed_share"),
        (lambda p: p["annotate"].update(max_failed_share="2%"), "annotate.max_failed_share"),
        (lambda p: p["annotate"].update(max_failed_share=True), "annotate.max_failed_share"),
        (lambda p: p["annotate"].update(max_failed_share=float("nan")), "annotate.max_failed_share"),
        (lambda p: p["annotate"].update(max_failed_share=None), "annotate.max_failed_share"),
        (lambda p: p["annotate"].update(teacher=[]), "annotate.teacher"),
        (lambda p: p["annotate"]["teachers"][0].update(backend="gpt"), "annotate.teachers[0].backend"),
        (lambda p: p["annotate"]["teachers"][1].update(name="lexical"), "annotate.teachers"),
        (lambda p: p["annotate"]["teachers"][0].update(sampling={"temp": 0}), "annotate.teachers[0].sampling.temp"),
        (
            lambda p: p["annotate"]["teachers"][0]["options"].update(profile="fuzzy"),
            "annotate.teachers[lexical].options.profile",
        ),
        (
            lambda p: p["annotate"]["teachers"][2]["options"].update(colour="red"),
            "annotate.teachers[lenient].options.colour",
        ),
        (lambda p: p["merge"].update(score="median"), "merge.score"),
        (lambda p: p["merge"].update(score="llm"), "merge.judge"),
        (lambda p: p["merge"].update(score="llm", judge="gpt4"), "merge.judge"),
        (lambda p: p["merge"].update(min_valid=0), "merge.min_valid"),
        (lambda p: p["golden"].update(path="/etc/passwd"), "golden.path"),
        (lambda p: p["split"].update(train=0), "split.train"),
        (lambda p: p["split"].update(mixed="yes"), "split.mixed"),
        (lambda p: p["split"].update(shuffle=True), "split.shuffle"),
        (lambda p: p["variants"].update(names=["none", "length_-5"]), "variants.names"),
        (lambda p: p["variants"].update(names=["none", "scrambled"]), "variants.names"),
        (lambda p: p["variants"].update(names=["none", "none"]), "variants.names"),
        (lambda p: p["stats"].update(context_limit="8k"), "stats.context_limit"),
        (lambda p: p["stats"].update(tokenizer=""), "stats.tokenizer"),
        (lambda p: p["stats"].update(tokenizer_revision=""), "stats.tokenizer_revision"),
        (lambda p: p["stats"].update(tokenizer_revision=123), "stats.tokenizer_revision"),
        (lambda p: p["stats"].update(tokenizer_rev="main"), "stats.tokenizer_rev"),
        (lambda p: p.update(replication="yes"), "replication"),
        (lambda p: p.update(replication=1), "replication"),
        (lambda p: p["train"].update(epoch=3), "train.epoch"),
        (lambda p: p["train"].update(seed=3), "train.seed"),
        (lambda p: p["train"].update(seeds=[0, 0]), "train.seeds"),
        (lambda p: p["train"].update(seeds=[]), "train.seeds"),
        (lambda p: p["train"].update(sets=["chatterbot", "coqa"]), "train.sets"),
        (lambda p: p["train"].update(dimensions=["fluency"]), "train.dimensions"),
        (lambda p: p["train"].update(variants=["length_30"]), "train.variants"),  # not built by variants.names
        (lambda p: p["train"].update(variants=["none", "confidence"]), "ablation.variants"),  # in both grids
        (lambda p: p["ablation"].update(variants=["length_30"]), "ablation.variants"),  # not built
        (lambda p: p["ablation"].update(sets=["chatterbot_perturbed", "coqa"]), "ablation.sets"),
        (lambda p: p.update(train={**p["train"], "sets": ["chatterbot"]}), "ablation.sets"),  # not in train.sets
        (lambda p: p["ablation"].update(dimensions=[]), "ablation.dimensions"),
        (lambda p: p["ablation"].update(seeds=[1]), "ablation.seeds"),
        (lambda p: p.update(ablation=["mixed"]), "ablation"),
        (lambda p: p.pop("ablation"), "ablation"),  # dvc.yaml interpolates ${ablation.*}
        (lambda p: p["train"].update(method="qlora"), "train.method"),
        (lambda p: p["train"].update(quantization="int8"), "train.quantization"),
        (lambda p: p["train"].update(quantization="nf4", method="full"), "train.quantization"),
        (lambda p: p["train"].update(method="lora", lora={"rank": 8}), "train.lora"),
        (lambda p: p["train"].update(method="lora", lora={"r": 0}), "train.lora.r"),
        (lambda p: p["train"].update(learning_rate="fast"), "train.learning_rate"),
        (lambda p: p["train"].update(learning_rate=-1e-3), "train.learning_rate"),
        (lambda p: p["train"].update(max_length=4), "train.max_length"),
        (lambda p: p["train"].update(explanation_position="middle"), "train.explanation_position"),
        (lambda p: p["train"].update(score_target="two_hot"), "train.score_target"),
        (lambda p: p["train"].update(score_weight=0), "train.score_weight"),
        (lambda p: p["train"].update(num_processes=0), "train.num_processes"),
        (lambda p: p["train"].update(device="tpu"), "train.device"),
        (lambda p: p["train"].update(student=""), "train.student"),
        (lambda p: p["student"]["tiny"].update(width=64), "student.tiny.width"),
        (lambda p: p["student"]["pretrain"].update(steps=0), "student.pretrain.steps"),
        (lambda p: p["student"]["pretrain"].update(lr="quick"), "student.pretrain.lr"),
    ],
)
def test_later_sections_fail_naming_the_key(change, key):

    with pytest.raises(ConfigError) as ei:
        check_profile(edited(change))
    assert ei.value.key == key, str(ei.value)


def test_annotate_max_failed_share_default_bounds_and_message():
    from explainft.config import annotate_config

    params = load_params(ROOT / "params.yaml")
    assert annotate_config(params).max_failed_share == 0.02
    del params["annotate"]["max_failed_share"]
    assert annotate_config(params).max_failed_share == 0.02  # the default
    for value, expect in ((0, 0.0), (1, 1.0), (0.5, 0.5)):
        params["annotate"]["max_failed_share"] = value
        assert annotate_config(params).max_failed_share == expect
    params["annotate"]["max_failed_share"] = 2
    with pytest.raises(ConfigError) as ei:
        annotate_config(params)
    assert str(ei.value) == (
        "params: annotate.max_failed_share: must be a number from 0 to 1: the largest share of "
        "a teacher × prompt × dimension's requests that may fail (0.02 = 2%), got 2"
    )
    for name in ("paper", "smollm2", "default"):
        assert load_params(ROOT / "configs" / f"{name}.yaml")["annotate"]["max_failed_share"] == 0.02


def test_variant_errors_name_the_variant_and_reason():

    with pytest.raises(ConfigError) as ei:
        check_profile(edited(lambda p: p["variants"].update(names=["none", "length_-5"])))
    assert "length_-5" in str(ei.value) and "negative" in str(ei.value)


def test_dvc_yaml_plots_match_the_statistics_module():
    """dvc.yaml's top-level plots and explanation_stats.dvc_plot_specs() must not drift apart."""
    from explainft.analysis.explanation_stats import dvc_plot_specs

    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    as_map = {
        (next(iter(p)) if isinstance(p, dict) else p): (next(iter(p.values())) if isinstance(p, dict) else None)
        for p in declared
    }
    for spec in dvc_plot_specs()["plots"]:
        if isinstance(spec, str):
            assert spec in as_map, f"{spec} missing from dvc.yaml plots"
            continue
        ((path, props),) = spec.items()
        assert path in as_map, f"{path} missing from dvc.yaml plots"
        for key in ("x", "y", "template"):
            assert as_map[path][key] == props[key], (path, key)


def test_cells_of_both_grids_and_errors_naming_the_grid():
    from explainft.config import finetune_config

    fc = finetune_config(DEFAULT)
    cells = fc.cells()
    assert cells[0] == ("chatterbot", "naturalness", "none", 0) and len(set(cells)) == len(cells)
    assert ("mixed", "naturalness", "shuffle", 0) in cells and ("mixed", "on_topic", "shuffle", 0) not in cells
    fc.check_cell("mixed", "naturalness", "length_8", 0)
    for cell, key in (
        (("mixed", "on_topic", "shuffle", 0), "ablation.dimensions"),
        (("chatterbot", "naturalness", "shuffle", 0), "ablation.sets"),
        (("mixed", "naturalness", "length_30", 0), "train.variants"),
        (("mixed", "naturalness", "none", 3), "train.seeds"),
        (("coqa", "naturalness", "none", 0), "train.sets"),
    ):
        with pytest.raises(ConfigError) as e:
            fc.check_cell(*cell)
        assert e.value.key == key, (cell, str(e.value))


def test_finetune_stages_declare_every_training_param_but_not_the_grid():
    """A fine-tune reruns when a setting that shapes its model changes, and not when the grid grows or shrinks
    (train.sets, dimensions, variants, seeds: `dvc exp run -S 'train.seeds=[0,1]'` trains only seed 1)."""
    from explainft.config import TRAIN_OWN_KEYS
    from explainft.config.train import _FIELDS

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    grid = {"sets", "dimensions", "variants", "seeds"}
    not_params = {"seed", "save_total_limit"}  # seed: from the matrix; save_total_limit: checkpoints only, no model
    # student_revision: a param of the student stage, which pins the commit in models/student/STUDENT.json, a dep of
    # every fine-tune (so a new revision reruns them through that file)
    not_params.add("student_revision")
    expected = {f"train.{k}" for k in (set(TRAIN_OWN_KEYS) | _FIELDS) - grid - not_params}
    for name in ("finetune", "finetune_ablation"):
        assert set(stages[name]["params"]) == expected, name
    assert expected <= {f"train.{k}" for k in DEFAULT["train"]}  # each is in the profile (DVC needs the key)
    assert "train.student_revision" in stages["student"]["params"] and "student_revision" in DEFAULT["train"]


def test_stats_tokenizer_revision_and_the_replication_flag():
    stats = stats_config(DEFAULT)
    assert (stats.tokenizer, stats.tokenizer_revision, stats.gguf_file, stats.context_limit) == (
        "models/student",
        None,
        None,
        1024,
    )
    pinned = stats_config(edited(lambda p: p["stats"].update(tokenizer="owner/tok", tokenizer_revision=MISTRAL_SHA)))
    assert pinned.tokenizer_revision == MISTRAL_SHA
    assert not is_replication(DEFAULT) and is_replication({"replication": True})
    assert not is_replication({"replication": False})
    check_sections({"profile": "x", "replication": False})  # a known top-level key


def test_the_tokenizer_revision_reaches_from_pretrained(monkeypatch, tmp_path):
    import transformers

    from explainft.stages import explanation_stats as stage

    calls = []

    def fake(name, **kwargs):
        calls.append((name, kwargs))
        return "tokenizer"

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", staticmethod(fake))
    assert stage.load_tokenizer("mistralai/Mistral-7B-v0.1", None, MISTRAL_SHA) == "tokenizer"
    stage.load_tokenizer("owner/tok")
    stage.load_tokenizer("owner/tok", "t.gguf", "main")
    stage.load_tokenizer(str(tmp_path), None, MISTRAL_SHA)  # a local folder has no revision
    assert calls == [
        ("mistralai/Mistral-7B-v0.1", {"revision": MISTRAL_SHA}),
        ("owner/tok", {}),
        ("owner/tok", {"gguf_file": "t.gguf", "revision": "main"}),
        (str(tmp_path), {}),
    ]
    # the stage passes the profile's stats.tokenizer_revision and records it in its metrics
    calls.clear()
    monkeypatch.setattr(stage, "read_jsonl", lambda path, cls: [])
    monkeypatch.setattr(stage, "explanation_stats", lambda examples, **kw: {"tokenizer_seen": kw["tokenizer"]})
    metrics = stage.run(load_params(ROOT / "configs" / "paper.yaml"), root=tmp_path)
    assert calls == [("mistralai/Mistral-7B-v0.1", {"revision": MISTRAL_SHA})]
    assert metrics["tokenizer_revision"] == MISTRAL_SHA and metrics["tokenizer_seen"] == "tokenizer"
    assert "tokenizer_revision" not in stage.run(edited(lambda p: None), root=tmp_path)
