"""explanation_stats: exact values on a hand-made set of examples, stable outputs, clear errors.

The hand-made set (words marked S are stopwords of the ``stop-words`` package, N are not;
``test_stopword_assumptions`` pins that):

    cell                   label  response (assistant turn)        assessment
    alpha / naturalness    5      "Hello there friend"              "The response sounds natural."  S N N N
    alpha / naturalness    4      "Hi"                              "Response is robotic."          N S N
    alpha / naturalness    4      "Hello hello hello hello hello"   "It repeats the phrase."        S N S N
    alpha / on_topic       1      "Paris is the capital"            "Relevant answer."              N N
    alpha / on_topic       2      "Bananas"                         "The response is off topic."    S N S S N
    beta  / naturalness    3      "Sure thing"                      "Robotic response."             N N

The tokenizer splits on whitespace (one token per piece), so with the prompt
"Rate <dimension>: <response>" the total ``prompt + " " + label + "\\n" + assessment``
is 2 + response words + 1 + assessment pieces: 10, 7, 12 | 9, 9 | 7.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from explainft.analysis import explanation_stats as es
from explainft.records import Example, Turn

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ROWS = [
    ("alpha", "naturalness", 5, "Hello there friend", "The response sounds natural."),
    ("alpha", "naturalness", 4, "Hi", "Response is robotic."),
    ("alpha", "naturalness", 4, "Hello hello hello hello hello", "It repeats the phrase."),
    ("alpha", "on_topic", 1, "Paris is the capital", "Relevant answer."),
    ("alpha", "on_topic", 2, "Bananas", "The response is off topic."),
    ("beta", "naturalness", 3, "Sure thing", "Robotic response."),
]


def make_examples() -> dict[tuple[str, str], list[Example]]:
    cells: dict[tuple[str, str], list[Example]] = {}
    # inserted in an order different from the output order: rows must sort by dataset, then dimension
    for i, (ds, dim, label, response, assessment) in reversed(list(enumerate(ROWS))):
        ex = Example(
            id=f"{ds}-{i}",
            dataset=ds,
            dimension=dim,
            turns=(Turn("user", "Hi there"), Turn("assistant", response)),
            score=(label - 1) / 4,
            label=label,
            assessment=assessment,
            confidence="High.",
        )
        cells.setdefault((ds, dim), []).insert(0, ex)
    return cells


class WhitespaceTokenizer:
    """A fake HF tokenizer: one id per whitespace-separated piece; special tokens add a BOS id."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def __call__(self, texts, add_special_tokens=True):
        self.calls.append(add_special_tokens)
        bos = [1] if add_special_tokens else []
        return {"input_ids": [bos + [len(p) + 2 for p in t.split()] for t in texts]}


def prompt_fn(ex: Example) -> str:
    return f"Rate {ex.dimension}: {ex.turns[-1].text}"


def run(out_dir: Path, tokenizer=None, **kw) -> dict:
    kw.setdefault("bin_width", 5)
    return es.explanation_stats(
        make_examples(),
        tokenizer=tokenizer or WhitespaceTokenizer(),
        context_limit=10,
        prompt_fn=prompt_fn,
        out_dir=out_dir,
        **kw,
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> tuple[Path, dict, WhitespaceTokenizer]:
    out = tmp_path_factory.mktemp("explanations")
    tok = WhitespaceTokenizer()
    summary = run(out, tok)
    return out, summary, tok


# --------------------------------------------------------------------------- words


def test_stopword_assumptions():
    for w in ("the", "is", "it", "off"):
        assert es.is_stopword(w), w
    for w in ("response", "sounds", "natural", "robotic", "repeats", "phrase", "relevant", "answer", "topic"):
        assert not es.is_stopword(w), w


def test_words_are_lowercased_alphabetic_with_apostrophes():
    assert es.words("It’s the user's Question: 42 answers, don't!") == [
        "it's",
        "the",
        "user's",
        "question",
        "answers",
        "don't",
    ]
    assert es.words("") == []


# --------------------------------------------------------------------------- the four CSVs


def test_score_distribution_counts_and_shares(outputs):
    out, _, _ = outputs
    assert (out / "score_distribution.csv").read_text(encoding="utf-8") == (
        "dataset,dimension,label,count,share\n"
        "alpha,naturalness,1,0,0.000000\n"
        "alpha,naturalness,2,0,0.000000\n"
        "alpha,naturalness,3,0,0.000000\n"
        "alpha,naturalness,4,2,0.666667\n"
        "alpha,naturalness,5,1,0.333333\n"
        "alpha,on_topic,1,1,0.500000\n"
        "alpha,on_topic,2,1,0.500000\n"
        "alpha,on_topic,3,0,0.000000\n"
        "alpha,on_topic,4,0,0.000000\n"
        "alpha,on_topic,5,0,0.000000\n"
        "beta,naturalness,1,0,0.000000\n"
        "beta,naturalness,2,0,0.000000\n"
        "beta,naturalness,3,1,1.000000\n"
        "beta,naturalness,4,0,0.000000\n"
        "beta,naturalness,5,0,0.000000\n"
    )


def test_token_lengths_histogram_without_special_tokens(outputs):
    out, _, tok = outputs
    assert tok.calls and not any(tok.calls), "tokenised with special tokens"
    # totals 10, 7, 12 | 9, 9 | 7 in bins of 5: [0,5) [5,10) [10,15)
    assert (out / "token_lengths.csv").read_text(encoding="utf-8") == (
        "dataset,dimension,bin_start,bin_end,count\n"
        "alpha,naturalness,0,5,0\n"
        "alpha,naturalness,5,10,1\n"
        "alpha,naturalness,10,15,2\n"
        "alpha,on_topic,0,5,0\n"
        "alpha,on_topic,5,10,2\n"
        "alpha,on_topic,10,15,0\n"
        "beta,naturalness,0,5,0\n"
        "beta,naturalness,5,10,1\n"
        "beta,naturalness,10,15,0\n"
    )


def test_nonstopword_probability_by_position(outputs):
    out, _, _ = outputs
    rows = read_csv(out / "nonstopword_by_position.csv")
    # k=1: the S, response N, it S, relevant N, the S, robotic N          -> 3/6
    # k=2: response N, is S, repeats N, answer N, response N, response N  -> 5/6
    # k=3 (4 explanations with >= 3 words): sounds N, robotic N, the S, is S -> 2/4
    # k=4: natural N, phrase N, off S -> 2/3;  k=5: topic N -> 1/1 (K = the longest, 5 words)
    assert rows == [
        {"k": "1", "probability": "0.500000", "n": "6"},
        {"k": "2", "probability": "0.833333", "n": "6"},
        {"k": "3", "probability": "0.500000", "n": "4"},
        {"k": "4", "probability": "0.666667", "n": "3"},
        {"k": "5", "probability": "1.000000", "n": "1"},
    ]


def test_nonstopword_positions_capped_by_max_position(tmp_path):
    run(tmp_path, max_position=3)
    assert [r["k"] for r in read_csv(tmp_path / "nonstopword_by_position.csv")] == ["1", "2", "3"]


def test_first_words_ranking_ties_alphabetical(outputs):
    out, _, _ = outputs
    # response x4 (A1, A2, B2, C1), robotic x2, then seven words once each, alphabetically
    assert (out / "first_words.csv").read_text(encoding="utf-8") == (
        "word,count,rank\n"
        "response,4,1\n"
        "robotic,2,2\n"
        "answer,1,3\n"
        "natural,1,4\n"
        "phrase,1,5\n"
        "relevant,1,6\n"
        "repeats,1,7\n"
        "sounds,1,8\n"
        "topic,1,9\n"
    )


def test_first_words_window_and_top(tmp_path):
    # first two words: [the response] [response is] [it repeats] [relevant answer] [the response] [robotic response]
    run(tmp_path, first_n_words=2, top_words=3)
    assert read_csv(tmp_path / "first_words.csv") == [
        {"word": "response", "count": "4", "rank": "1"},
        {"word": "answer", "count": "1", "rank": "2"},
        {"word": "relevant", "count": "1", "rank": "3"},
    ]


# --------------------------------------------------------------------------- summary


def test_summary(outputs):
    _, summary, _ = outputs
    assert summary == {
        "context_limit": 10,
        "cells": {
            "alpha": {
                "naturalness": {
                    "n": 3,
                    "explanation_words_mean": 3.666667,
                    "total_tokens_mean": 9.666667,
                    # p95 of [7, 10, 12]: 10 + 0.9 * (12 - 10); 12 > 10 only (10 is not over)
                    "total_tokens_max": 12,
                    "total_tokens_p95": 11.8,
                    "share_over_context": 0.333333,
                },
                "on_topic": {
                    "n": 2,
                    "explanation_words_mean": 3.5,
                    "total_tokens_mean": 9.0,
                    "total_tokens_max": 9,
                    "total_tokens_p95": 9.0,
                    "share_over_context": 0.0,
                },
            },
            "beta": {
                "naturalness": {
                    "n": 1,
                    "explanation_words_mean": 2.0,
                    "total_tokens_mean": 7.0,
                    "total_tokens_max": 7,
                    "total_tokens_p95": 7.0,
                    "share_over_context": 0.0,
                },
            },
        },
        "total_tokens_max": 12,
        "share_over_context": 0.166667,
        "nonstopword": {"p_k1": 0.5, "n_k1": 6, "p_k25": None, "n_k25": 0},
    }


def test_summary_is_valid_metrics_json(outputs, tmp_path):
    from explainft.fsutil import write_json

    write_json(tmp_path / "explanations.json", outputs[1])  # no NaN, JSON-serialisable


def test_real_hf_tokenizer_interface(tmp_path, outputs):
    """A tiny HF fast tokenizer (whitespace split, BOS post-processor) gives the same totals."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "Rate": 2, "5": 3}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>")
    assert len(hf(["Rate 5"])["input_ids"][0]) == 3  # the BOS is there by default
    summary = run(tmp_path, hf)
    assert summary == outputs[1]
    assert (tmp_path / "token_lengths.csv").read_bytes() == (outputs[0] / "token_lengths.csv").read_bytes()


# --------------------------------------------------------------------------- figures and files


def test_token_figure_has_labelled_context_limit_line(outputs):
    out, _, _ = outputs
    rows = [
        (r["dataset"], r["dimension"], int(r["bin_start"]), int(r["bin_end"]), int(r["count"]))
        for r in read_csv(out / "token_lengths.csv")
    ]
    cells = sorted({(r[0], r[1]) for r in rows})
    with es.plot_style():
        fig = es._token_figure(rows, cells, 10)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["naturalness", "on_topic"]
    for ax in axes:
        limit_lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("context limit")]
        assert len(limit_lines) == 1
        assert list(limit_lines[0].get_xdata()) == [10, 10]
        assert limit_lines[0].get_label() == "context limit (10 tokens)"
        assert ax.get_xlim()[1] >= 10
        assert "10" in [t.get_text().strip() for t in ax.texts]  # the line's own label
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["alpha", "beta", "context limit (10 tokens)"]


def test_reruns_are_byte_identical(outputs, tmp_path):
    out, _, _ = outputs
    run(tmp_path)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{stem}.{ext}" for stem in es.FILES for ext in ("csv", "png"))  # no temp files left
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    for name in names:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    for stem in es.FILES:
        png = (out / f"{stem}.png").read_bytes()
        assert png.startswith(PNG_SIGNATURE) and b"Software" not in png
        with open(out / f"{stem}.csv", newline="", encoding="utf-8") as fh:
            assert tuple(next(csv.reader(fh))) == es.FILES[stem]


def test_rerun_overwrites_in_place(tmp_path):
    run(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    run(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_auto_bin_width():
    assert es._auto_bin_width(12) == 1
    assert es._auto_bin_width(100) == 5  # 2.5 -> 5
    assert es._auto_bin_width(8192) == 500  # 204.8 -> 500
    assert es._auto_bin_width(3000) == 100  # 75 -> 100


# --------------------------------------------------------------------------- errors


def test_empty_cell_names_it(tmp_path):
    examples = make_examples()
    examples[("beta", "on_topic")] = []
    with pytest.raises(ValueError, match=r"dataset='beta', dimension='on_topic'.*no examples"):
        es.explanation_stats(
            examples, tokenizer=WhitespaceTokenizer(), context_limit=10, prompt_fn=prompt_fn, out_dir=tmp_path
        )
    assert not any(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda ex: {}, "no \\(dataset, dimension\\) cells"),
        (lambda ex: {("alpha", "on_topic"): ex[("alpha", "naturalness")]}, "has dimension 'naturalness'"),
        (lambda ex: {"alpha": ex[("alpha", "naturalness")]}, "string pairs"),
    ],
)
def test_bad_input(tmp_path, mutate, message):
    with pytest.raises(ValueError, match=message):
        es.explanation_stats(
            mutate(make_examples()),
            tokenizer=WhitespaceTokenizer(),
            context_limit=10,
            prompt_fn=prompt_fn,
            out_dir=tmp_path,
        )


@pytest.mark.parametrize("limit", [0, -1, 8192.0, True])
def test_bad_context_limit(tmp_path, limit):
    with pytest.raises(ValueError, match="context_limit"):
        es.explanation_stats(
            make_examples(), tokenizer=WhitespaceTokenizer(), context_limit=limit, prompt_fn=prompt_fn, out_dir=tmp_path
        )


# --------------------------------------------------------------------------- DVC


def test_dvc_plot_specs_fit_dvc_yaml_schema():
    import voluptuous as vol
    from dvc.schema import SINGLE_PLOT_SCHEMA

    specs = es.dvc_plot_specs("plots/explanations/")
    assert list(specs) == ["plots"]
    vol.Schema([vol.Any(str, SINGLE_PLOT_SCHEMA)])(specs["plots"])
    csvs = {k: v for entry in specs["plots"] if isinstance(entry, dict) for k, v in entry.items()}
    pngs = [entry for entry in specs["plots"] if isinstance(entry, str)]
    assert sorted(csvs) == sorted(f"plots/explanations/{stem}.csv" for stem in es.FILES)
    assert sorted(pngs) == sorted(f"plots/explanations/{stem}.png" for stem in es.FILES)
    for path, spec in csvs.items():
        columns = es.FILES[Path(path).stem]
        assert spec["x"] in columns and spec["y"] in columns, path
    assert csvs["plots/explanations/nonstopword_by_position.csv"]["x"] == "k"
