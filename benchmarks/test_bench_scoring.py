"""Scoring throughput: the one-pass expected score against generating the answer and parsing it.

Both rate the same 256 test examples with the same fine-tuned tiny student
(a Mistral-architecture model built and pretrained here, then fully fine-tuned
on a learnable pattern so that its greedy answer is a score digit):

* project (``scoring_one_pass``): :func:`explainft.scoring.score_examples`,
  one forward pass per batch of 32, LM head at one position per row, the five
  score-token probabilities, the expected score and the argmax;
* baseline ``scoring_generate`` (group ``scoring``): ``model.generate`` of the
  answer the rater was trained to give (greedy, up to EOS or 48 new tokens:
  the score, then its explanation; batches of 32, left padding, KV cache) on the
  same prompt prefixes, then the first digit 1-5 of the decoded text parsed as
  the score: the usual "generate and parse";
* baseline ``scoring_generate_2_tokens`` (group ``scoring_2_tokens``): the same,
  but stopping after 2 new tokens, the cheapest generate that still yields the
  digit (a caller has to know the answer's layout to do this).

The ratio is project time / baseline time (< 1: the one-pass method is
faster); examples per second of all three go to .benchmarks/scoring.json, with
the share of items whose argmax equals the parsed greedy answer (1.0 expected:
greedy decoding picks the most probable next token, which for a trained rater
is a score digit).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import record  # noqa: E402

torch = pytest.importorskip("torch")

from explainft.encode import encode_example  # noqa: E402
from explainft.records import Example, Turn  # noqa: E402
from explainft.scoring import score_examples  # noqa: E402
from explainft.targets import student_prompt  # noqa: E402

N = 256
BATCH = 32
RESULTS: dict[str, float] = {}
GOOD = ("Paris is in France, on the river Seine, and it is the capital.", 5, "It answers the question directly.")
BAD = ("I like turtles and green soup with bread.", 1, "It ignores the question entirely.")


def example(i: int) -> Example:
    response, label, expl = GOOD if i % 2 == 0 else BAD
    return Example(
        id=f"b/{i}",
        dataset="b",
        dimension="on_topic",
        turns=(Turn("user", f"Where is Paris, and what is it known for? (question {i})"), Turn("assistant", response)),
        score=(label - 1) / 4,
        label=label,
        assessment=expl,
        confidence="c",
    ).with_target("assessment", expl)


@pytest.fixture(scope="module")
def rater(tmp_path_factory):
    from explainft.config import train_config
    from explainft.students import build_tiny, load_student, pretrain
    from explainft.train import finetune

    torch.set_num_threads(2)
    d = tmp_path_factory.mktemp("rater")
    exs = [example(i) for i in range(N)]
    texts = [student_prompt(e) + f" {e.label}\n{e.explanation}" for e in exs[:64]] * 4
    build_tiny(
        texts,
        d / "built",
        seed=0,
        vocab_size=1024,
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        intermediate=256,
        max_positions=1024,
    )
    pretrain(d / "built", texts, d / "student", steps=20, batch_size=8, seq_len=128, lr=2e-3)
    model, tok = load_student(str(d / "student"), method="full", quantization="none")
    finetune(
        model,
        tok,
        [example(i) for i in range(1000, 1128)],
        {},
        d / "ft",
        train_config({"epochs": 2, "learning_rate": 3e-3, "batch_size": 16, "max_length": 512, "logging_steps": 50}),
    )
    model.eval()
    return model, tok, exs


def generate_scores(model, tok, exs, max_new_tokens: int = 48) -> list[int | None]:
    """The baseline: greedy generation after the same prefix, then the first digit 1-5 parsed from the text."""
    prefixes = []
    for e in exs:
        enc = encode_example(tok, e.with_target("none", ""), 512)
        prefixes.append(enc.input_ids[: enc.score_index])
    out: list[int | None] = []
    pad = tok.pad_token_id
    with torch.inference_mode():
        for i in range(0, len(prefixes), BATCH):
            rows = prefixes[i : i + BATCH]
            width = max(map(len, rows))
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
            )
            for row in gen[:, width:]:
                m = re.search(r"[1-5]", tok.decode(row, skip_special_tokens=True))
                out.append(int(m.group()) if m else None)
    return out


def test_scoring_one_pass(benchmark, rater):
    model, tok, exs = rater
    scored = benchmark.pedantic(
        lambda: score_examples(model, tok, exs, max_length=512, batch_size=BATCH), rounds=3, warmup_rounds=1
    )
    record(benchmark, "scoring", "project")
    record(benchmark, "scoring_2_tokens", "project")
    RESULTS["one_pass_examples_per_s"] = N / benchmark.stats.stats.mean
    ARGMAX[:] = [s.argmax for s in scored]


ARGMAX: list[int] = []


@pytest.mark.parametrize("new_tokens, group", [(48, "scoring"), (2, "scoring_2_tokens")])
def test_scoring_generate(benchmark, rater, new_tokens, group):
    model, tok, exs = rater
    parsed = benchmark.pedantic(lambda: generate_scores(model, tok, exs, new_tokens), rounds=3, warmup_rounds=1)
    record(benchmark, group, "baseline")
    RESULTS[f"generate_{new_tokens}_examples_per_s"] = N / benchmark.stats.stats.mean
    if ARGMAX:
        RESULTS[f"generate_{new_tokens}_identical_argmax_share"] = sum(a == p for a, p in zip(ARGMAX, parsed)) / N
        RESULTS[f"generate_{new_tokens}_unparsable"] = sum(p is None for p in parsed)
        RESULTS[f"speedup_vs_generate_{new_tokens}"] = (
            RESULTS["one_pass_examples_per_s"] / RESULTS[f"generate_{new_tokens}_examples_per_s"]
        )
    Path(".benchmarks").mkdir(exist_ok=True)
    Path(".benchmarks/scoring.json").write_text(json.dumps(RESULTS, indent=2, sort_keys=True) + "\n")
