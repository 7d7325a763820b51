"""The DVC pipeline end to end, in a throwaway copy of the project: repro, skip, partial rerun."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(cwd / "src"),
        DVC_NO_ANALYTICS="1",
        GIT_TERMINAL_PROMPT="0",
    )
    p = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


def skipped(out: str) -> set[str]:
    return set(re.findall(r"Stage '([^']+)' didn't change, skipping", out))


def make_tokenizer(path: Path) -> None:
    """A small word-level tokenizer folder, so the statistics stage needs no model download."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        ["rate the response score naturalness on topic"], trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>"])
    )
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>").save_pretrained(path)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("src", "stages", "golden", "human", "paper", "selection"):
        shutil.copytree(ROOT / name, proj / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, proj / name)
    shutil.copytree(FIXTURES / "cornell", proj / "inputs" / "cornell")
    shutil.copytree(FIXTURES / "human", proj / "inputs" / "human")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["datasets"] = ["chatterbot", "chatterbot_perturbed", "cornell_movie_dialogs"]
    params["data"]["per_dataset"] = 40
    params["sources"]["cornell_movie_dialogs"] = {
        "fetch": {"from": "local", "path": "inputs/cornell"},
        "options": {},
    }
    params["split"].update(train=2, validation=1, test=2)  # the Cornell fixture has 5 conversations
    # the default's two human-rated sets, as small fixtures in the same formats
    params["human"]["sets"]["helpsteer"]["fetch"] = {"from": "local", "path": "inputs/human/helpsteer"}
    params["human"]["sets"]["arena_human_preference"]["fetch"] = {
        "from": "local",
        "path": "inputs/human/arena_human_preference/jsonl",
    }
    params["human"]["bootstrap"] = 200
    params["variants"]["names"] = ["none", "assessment", "length_5", "shuffle"]
    params["stats"] = {"tokenizer": "inputs/tokenizer", "context_limit": 512}
    # a very small student and grid: the stages run, the numbers are not the point here
    params["student"] = {
        "tiny": {
            "seed": 0,
            "vocab_size": 600,
            "hidden": 32,
            "layers": 1,
            "heads": 2,
            "kv_heads": 1,
            "intermediate": 64,
            "max_positions": 1024,
        },
        "pretrain": {"steps": 3, "lr": 2.0e-3, "batch_size": 4, "seq_len": 64, "seed": 0},
    }
    params["train"].update(
        sets=["mixed"],
        dimensions=["on_topic"],
        variants=["none", "assessment"],
        epochs=1,
        batch_size=4,
        logging_steps=1,
    )
    params["ablation"] = {"sets": ["mixed"], "dimensions": ["on_topic"], "variants": ["length_5"]}
    make_tokenizer(proj / "inputs" / "tokenizer")
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], proj)
    run(["dvc", "init", "-q"], proj)
    run(["dvc", "config", "core.analytics", "false"], proj)
    return proj


def set_param(proj: Path, path: list[str], value) -> None:
    params = yaml.safe_load((proj / "params.yaml").read_text())
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


DATASETS = ("chatterbot", "chatterbot_perturbed", "cornell_movie_dialogs")
PER_DATASET = ("download", "prepare", "annotate", "merge")
FINETUNES = {
    "finetune@mixed-on_topic-none-0",
    "finetune@mixed-on_topic-assessment-0",
    "finetune_ablation@mixed-on_topic-length_5-0",
}
EVALUATES = {
    "evaluate@mixed-on_topic-none-0",
    "evaluate@mixed-on_topic-assessment-0",
    "evaluate_ablation@mixed-on_topic-length_5-0",
    "baselines@on_topic",
}
HUMAN_SETS = ("helpsteer", "arena_human_preference")
GLOBAL = (
    {"split", "variants", "explanation_stats", "student", "analyse", "report"}
    | FINETUNES
    | EVALUATES
    | {f"human_eval@{h}" for h in HUMAN_SETS}
)
ALL = (
    {f"{s}@{d}" for s in PER_DATASET for d in DATASETS}
    | {"golden"}
    | {f"human_download@{h}" for h in HUMAN_SETS}
    | GLOBAL
)


def downstream(*datasets: str, start: str = "prepare") -> set[str]:
    """The per-dataset stages from ``start`` on, for ``datasets``."""
    stages = PER_DATASET[PER_DATASET.index(start) :]
    return {f"{s}@{d}" for s in stages for d in datasets}


def test_repro_skip_and_partial_rerun(project: Path):
    first = run(["dvc", "repro"], project)
    assert ran(first.stdout) == ALL

    clean = [json.loads(x) for x in (project / "data/prepared/chatterbot.jsonl").read_text().splitlines()]
    twin = [json.loads(x) for x in (project / "data/prepared/chatterbot_perturbed.jsonl").read_text().splitlines()]
    assert len(clean) == 40 and len(twin) == 40
    assert all(c["dataset"] == "chatterbot" and c["turns"][-1]["role"] == "assistant" for c in clean)
    assert all("perturbations" in c["meta"] for c in twin)
    m = json.loads((project / "metrics/prepare/chatterbot.json").read_text())
    assert (m["sampled"], m["conversations"], m["source_records"]) == (40, 898, 2026)
    assert m["skipped"] == {"wrong_type": 1} and m["dropped"] == {"duplicate_dialogue": 2025 - 898}
    manifest = json.loads((project / "data/raw/chatterbot/SOURCE.json").read_text())
    assert manifest["from"] == "package"
    assert len(manifest["files"]) == 21
    corn = json.loads((project / "metrics/prepare/cornell_movie_dialogs.json").read_text())
    assert corn["sampled"] > 0
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["prepare@chatterbot"]["params"]["params.yaml"]["data.per_dataset"] == 40
    assert lock["stages"]["download@chatterbot"]["params"]["params.yaml"]["profile"] == "default"

    second = run(["dvc", "repro"], project)
    assert ran(second.stdout) == set()
    assert skipped(second.stdout) == ALL

    # touching a file of project code changes exactly the stages whose code deps (the import graph) hold it:
    # a script two stages share, and a library module (every stage imports it while config.py imports its consumers)
    from explainft.codedeps import stage_code

    code = stage_code(project / "dvc.yaml")
    users = {
        path: {stage for stage, files in code.items() if path in files}
        for path in ("stages/finetune.py", "src/explainft/targets.py")
    }
    assert users["stages/finetune.py"] == {"finetune", "finetune_ablation"} and users["src/explainft/targets.py"]
    for touched, stages in users.items():
        path = project / touched
        source = path.read_text()
        path.write_text(source + "# touched\n")
        changed = json.loads(run(["dvc", "status", "--json"], project).stdout)
        assert set(changed) == {s for s in ALL if s.split("@")[0] in stages}, touched
        path.write_text(source)
        assert json.loads(run(["dvc", "status", "--json"], project).stdout) == {}

    ratings = [json.loads(x) for x in (project / "data/annotated/chatterbot.jsonl").read_text().splitlines()]
    assert len(ratings) == 40 * 3 * 4 * 3 and all(r["status"] == "ok" for r in ratings)
    items = [json.loads(x) for x in (project / "data/merged/chatterbot.jsonl").read_text().splitlines()]
    assert len(items) == 40 * 3 and all(1 <= i["label"] <= 5 and i["n_valid"] == 12 for i in items)
    assert json.loads((project / "metrics/golden.json").read_text()) == {"configured": False}
    split = json.loads((project / "metrics/split.json").read_text())
    assert (
        split["sets"]["mixed/on_topic"]["train"]["n"] == 2
        and split["sets"]["cornell_movie_dialogs/on_topic"]["test"]["n"] == 2
    )
    assert split["sets"]["mixed/on_topic"]["validation"]["n"] == 1
    # twins (a chatterbot dialogue and its perturbed copy share a group) never straddle a split, Mixed included
    assert split["group_overlap_total"] == 0
    assert all(n == 0 for pairs in split["group_overlap"].values() for n in pairs.values())
    assert len(split["group_overlap"]["test_in_train"]) == 4 * 4
    parts = {}
    for s in ("chatterbot", "chatterbot_perturbed", "mixed"):
        for part in ("train", "validation", "test"):
            for line in (project / f"data/splits/{s}/on_topic/{part}.jsonl").read_text().splitlines():
                assert parts.setdefault(json.loads(line)["group"], part) == part
    twin_groups = [
        {json.loads(x)["group"] for x in (project / f"data/splits/{s}/on_topic/test.jsonl").read_text().splitlines()}
        for s in ("chatterbot", "chatterbot_perturbed")
    ]
    assert twin_groups[0] == twin_groups[1]
    for variant in ("none", "assessment", "length_5", "shuffle"):
        rows = [
            json.loads(x) for x in (project / f"data/variants/mixed/on_topic/{variant}.jsonl").read_text().splitlines()
        ]
        assert len(rows) == 2 and all(r["variant"] == variant for r in rows)
    assert (project / "plots/explanations/token_lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((project / "metrics/explanations.json").read_text())["context_limit"] == 512
    assert json.loads((project / "models/student/STUDENT.json").read_text()) == {"student": "tiny"}
    for variant in ("none", "assessment"):
        tm = json.loads((project / f"metrics/train/mixed/on_topic/{variant}/seed_0.json").read_text())
        assert (tm["set"], tm["dimension"], tm["variant"], tm["n_train"], tm["n_validation"]) == (
            "mixed",
            "on_topic",
            variant,
            2,
            1,
        )
        assert tm["steps"] == 1 and tm["validation_loss_final"] > 0 and tm["validation_mse"] >= 0
        cell = project / "models/finetuned/mixed/on_topic" / variant / "seed_0"
        # the model folder holds no run-dependent file (the Trainer's trainer_state.json has run times)
        assert (cell / "model" / "model.safetensors").is_file() and not (cell / "model" / "trainer_state.json").exists()
        assert (
            "train_seconds" not in tm
            and json.loads((project / f"timings/train/mixed/on_topic/{variant}/seed_0.json").read_text())[
                "train_seconds"
            ]
            > 0
        )
        assert not list((cell / "checkpoints").glob("checkpoint-*"))  # removed after success; RUN.json stays
        assert (cell / "checkpoints" / "RUN.json").is_file()
        curve = project / f"plots/train/mixed/on_topic/{variant}/seed_0/plots/metrics/eval/validation/loss.tsv"
        assert curve.read_text().splitlines()[0] == "step\tloss"
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["finetune@mixed-on_topic-none-0"]["params"]["params.yaml"]["train.epochs"] == 1
    ev = json.loads((project / "metrics/evaluate/finetuned/mixed/on_topic/none/seed_0.json").read_text())
    assert set(ev["test"]) == {"chatterbot", "chatterbot_perturbed", "cornell_movie_dialogs", "mixed"}
    assert all(r["n"] == 2 for r in ev["test"].values())
    report = json.loads((project / "metrics/report.json").read_text())
    assert report["cells"] == 1 and report["models"] == 3 and report["paper_cells"] == 6  # on-topic only
    # agreement with people: the fixtures' evaluation part; the students rate on-topic, the teachers every dimension
    hs = json.loads((project / "metrics/human/helpsteer.json").read_text())
    assert (hs["kind"], hs["items"], hs["design_items"]) == ("ratings", 2, 2)
    assert set(hs["raters"]["ensemble/average"]) == {"naturalness", "comprehensiveness", "on_topic"}
    assert set(hs["raters"]["student/mixed/on_topic/assessment/seed_0"]) == {"on_topic"}
    assert set(hs["differences"]) == {
        "mixed/on_topic/assessment/seed_0 - none",
        "mixed/on_topic/length_5/seed_0 - none",
    }
    arena = json.loads((project / "metrics/human/arena_human_preference.json").read_text())
    assert (arena["kind"], arena["items"], arena["load"]["dropped"]) == ("preferences", 3, {"empty_response": 1})
    assert set(report["human"]) == set(HUMAN_SETS)
    assert set(report["ablation"]["length"]) == {f"mixed/on_topic/{v}" for v in ("none", "length_5", "assessment")}
    md = (project / "reports/REPORT.md").read_text()
    assert "| mixed [length_5] |" in md and (project / "reports/figures/ablation_length.png").is_file()
    assert "## With vs without explanations" in md and "| mixed (E) |" in md
    assert "## Agreement with people" in md and "### helpsteer (helpsteer)" in md
    assert (
        (project / "reports/tables/on_topic_mse.csv")
        .read_text()
        .startswith("trained on,chatterbot,chatterbot_perturbed,cornell_movie_dialogs,mixed\nUntuned,")
    )

    # one dataset's option: only that dataset's stages rerun
    set_param(project, ["sources", "chatterbot_perturbed", "options", "keep_share"], 0.5)
    third = run(["dvc", "repro"], project)
    assert ran(third.stdout) == downstream("chatterbot_perturbed") | GLOBAL
    twin2 = [json.loads(x) for x in (project / "data/prepared/chatterbot_perturbed.jsonl").read_text().splitlines()]
    kept = sum(1 for c in twin2 if not c["meta"]["perturbations"])
    assert kept > sum(1 for c in twin if not c["meta"]["perturbations"])

    # one dataset's fetch spec: only that dataset's download (and then its prepare, if the raw files changed)
    set_param(project, ["sources", "chatterbot", "fetch", "files"], ["data/english/*.yml", "data/english/ai.yml"])
    fourth = run(["dvc", "repro"], project)
    assert "download@chatterbot" in ran(fourth.stdout)
    assert ran(fourth.stdout) <= downstream("chatterbot", start="download") | GLOBAL

    # the shared sample size reruns every prepare and no download
    set_param(project, ["data", "per_dataset"], 30)
    fifth = run(["dvc", "repro"], project)
    # cornell's fixture has fewer than 30 conversations: its prepared file is unchanged, so nothing after it reruns
    # the split reruns, but hash sampling is stable: the 30 kept are the first 30 of the 40, and the split's
    # first 5 in hash order are among them, so its outputs are unchanged and nothing after it reruns but the
    # report, which depends on every param (its header hashes the params of every stage upstream of it)
    assert ran(fifth.stdout) == (
        downstream("chatterbot", "chatterbot_perturbed") | {"prepare@cornell_movie_dialogs"} | {"split", "report"}
    )
    assert len((project / "data/prepared/chatterbot.jsonl").read_text().splitlines()) == 30

    # the merge method: only the merges rerun, not the annotation
    set_param(project, ["merge", "score"], "most_frequent")
    sixth = run(["dvc", "repro"], project)
    assert ran(sixth.stdout) == downstream(*DATASETS, start="merge") | {"golden"} | GLOBAL

    # a variant-only change reruns the variants stage, and the report, which reads the explanation lengths in
    # metrics/variants.json; no fine-tune reruns (the trained variants' files are unchanged)
    set_param(project, ["variants", "names"], ["none", "assessment", "length_5", "weighted_associated"])
    seventh = run(["dvc", "repro"], project)
    assert ran(seventh.stdout) == {"variants", "report"}
    assert (project / "data/variants/mixed/on_topic/weighted_associated.jsonl").exists()
    assert not (project / "data/variants/mixed/on_topic/shuffle.jsonl").exists()

    # the pipeline's outputs round-trip through an S3 remote (moto's server on 127.0.0.1), configured as README says
    s3_round_trip(project)


def _hashes(root: Path, *tops: str) -> dict[str, str]:
    import hashlib

    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for top in tops
        for p in sorted((root / top).rglob("*"))
        if p.is_file() and p.name != ".gitignore"
    }


def s3_round_trip(project: Path) -> None:
    """dvc push every cached output (data, the student, the fine-tuned models and their checkpoints), delete the
    cache and the outputs, dvc pull: `dvc status` is clean and every file is byte-identical."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket="pipeline")
        shutil.copy(ROOT / ".dvc" / "config", project / ".dvc" / "config")  # the committed remote, placeholder url
        for key, value in (
            ("url", "s3://pipeline/explainft"),
            ("endpointurl", endpoint),
            ("access_key_id", "testing"),
            ("secret_access_key", "testing"),
        ):
            run(["dvc", "remote", "modify", "--local", "storage", key, value], project)
        assert "testing" not in (project / ".dvc" / "config").read_text()
        before = _hashes(project, "data", "models")
        assert any(k.startswith("models/finetuned/") and k.endswith("model.safetensors") for k in before)
        assert any("/checkpoints/" in k for k in before)
        run(["dvc", "push"], project)
        for name in (".dvc/cache", "data", "models"):
            shutil.rmtree(project / name)
        run(["dvc", "pull"], project)
        assert _hashes(project, "data", "models") == before
        status = run(["dvc", "status", "--json"], project)
        assert json.loads(status.stdout) == {}, status.stdout
    finally:
        server.stop()


def test_a_bad_profile_fails_before_any_stage_writes(project: Path):
    set_param(project, ["data", "on_error"], "ignore")
    p = run(["dvc", "repro"], project, check=False)
    assert p.returncode != 0
    assert "data.on_error" in p.stderr + p.stdout
    assert not (project / "data" / "prepared").exists()
