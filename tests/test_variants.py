"""Training-target variants (Findings 3-5): exact properties of every variant."""

from __future__ import annotations

import math
import random
import time
from collections import Counter

import pytest

from explainft.errors import ConfigError
from explainft.records import Example, Turn
from explainft.variants import (
    BASE,
    BOTH_SEPARATOR,
    PAPER_LENGTHS,
    RANDOM_VARIANTS,
    VariantSpec,
    build_variants,
    build_variants_with_stats,
    content_words,
    dictionary_words,
    parse_variant,
    pool_words,
    stopwords,
    tokenize,
    validate_variants,
)

TURNS = (Turn("user", "How do I boil an egg?"), Turn("assistant", "Put it in boiling water for nine minutes."))
SEED = 20251103


def ex(
    i: int | str, assessment: str, *, label: int = 3, confidence: str = "Fairly sure.", dataset: str = "toy"
) -> Example:
    return Example(
        id=str(i),
        dataset=dataset,
        dimension="naturalness",
        turns=TURNS,
        score=(label - 1) / 4,
        label=label,
        assessment=assessment,
        confidence=confidence,
    )


def by_id(examples: list[Example]) -> dict[str, str]:
    return {e.id: e.explanation for e in examples}  # type: ignore[misc]


def chi_square(observed: Counter, expected_p: dict[str, float]) -> float:
    n = sum(observed.values())
    assert set(observed) <= set(expected_p)
    return sum((observed.get(w, 0) - n * p) ** 2 / (n * p) for w, p in expected_p.items())


def chi2_critical(df: int, z: float = 3.0902) -> float:
    """Upper quantile of chi2(df) by the Wilson-Hilferty approximation; z = 3.0902 is N(0,1)'s 0.999 quantile.

    For df = 4 this gives 18.7 (exact 0.999 quantile: 18.47); a correct sampler exceeds it with
    probability about 1e-3, and with a fixed seed the outcome is fixed, so the test cannot flake.
    """
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


VOCAB = (
    "answer response tone natural robotic scripted repeated phrase question detail coverage relevant "
    "topic drift wording user request thorough missing key information perspective emotion style"
).split()


def realistic_train(n: int, seed: int = 7) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(0, 150)
        words = [
            rng.choice(VOCAB) if rng.random() < 0.6 else rng.choice(["the", "is", "and", "a", "it"]) for _ in range(k)
        ]
        text = " ".join(words).capitalize() + ("." if words else "")
        out.append(ex(f"c{i}", text, label=rng.randint(1, 5), dataset=rng.choice(["arena", "coqa", "movies"])))
    return out


# --------------------------------------------------------------------------- names


def test_parse_variant_kinds():
    assert parse_variant("none") == VariantSpec("none", "type")
    assert parse_variant("both").kind == "type"
    assert parse_variant("length_25") == VariantSpec("length_25", "length", length=25)
    assert parse_variant("length_0").length == 0
    assert parse_variant("weighted_associated") == VariantSpec(
        "weighted_associated", "random", pool="label", weighted=True
    )
    assert parse_variant("fully_random").pool == "dictionary"
    assert parse_variant("shuffle") == VariantSpec("shuffle", "random", pool="all", weighted=False)
    assert [s.name for s in validate_variants(["none", *RANDOM_VARIANTS, "length_150"])][-1] == "length_150"


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("Shuffle", "unknown variant 'Shuffle'"),
        ("random", "unknown variant 'random'"),
        ("length_-5", "variant 'length_-5': negative length -5"),
        ("length_x", "variant 'length_x': malformed length 'x'"),
        ("length_", "variant 'length_': malformed length ''"),
        ("length_2.5", "malformed length '2.5'"),
        ("length_+5", "malformed length '+5'"),
        ("length_05", "leading zeros"),
        ("length_٣", "malformed length"),  # a non-ASCII digit
    ],
)
def test_bad_names(name, fragment):
    with pytest.raises(ConfigError) as e:
        parse_variant(name)
    assert e.value.key == "variants.names"
    assert fragment in e.value.message


def test_bad_name_lists():
    with pytest.raises(ConfigError, match="listed twice"):
        validate_variants(["none", "none"])
    with pytest.raises(ConfigError, match="must be a list"):
        validate_variants("none")
    with pytest.raises(ConfigError, match="must be a string"):
        validate_variants(["none", 5])


def test_names_validated_before_anything_is_built(monkeypatch):
    import explainft.variants as v

    calls = []
    monkeypatch.setattr(v, "pool_words", lambda *a, **k: calls.append(1) or {})
    with pytest.raises(ConfigError, match="length_-5"):
        build_variants([ex(1, "Robotic tone.")], ["shuffle", "length_-5"], seed=1)
    assert calls == []


def test_bad_seed():
    with pytest.raises(ConfigError) as e:
        build_variants([ex(1, "x")], ["none"], seed="1")  # type: ignore[arg-type]
    assert e.value.key == "variants.seed"


# --------------------------------------------------------------------------- explanation types


def test_explanation_types():
    e = ex(1, "  Natural tone.\nClear wording. ", confidence=" Very sure. ")
    out = build_variants([e], ["none", "assessment", "confidence", "both"], seed=1)
    assert out["none"][0].explanation == ""
    assert out["assessment"][0].explanation == "Natural tone.\nClear wording."
    assert out["confidence"][0].explanation == "Very sure."
    assert out["both"][0].explanation == "Natural tone.\nClear wording." + BOTH_SEPARATOR + "Very sure."
    assert BOTH_SEPARATOR == "\n\n"
    for name, exs in out.items():
        assert exs[0].variant == name
        # the rest of the record is untouched
        assert exs[0].assessment == e.assessment and exs[0].confidence == e.confidence and exs[0].label == 3
    only_a = build_variants([ex(2, "Fine.", confidence="  ")], ["both"], seed=1)["both"][0]
    assert only_a.explanation == "Fine."


def test_output_keeps_input_order_and_length():
    train = realistic_train(50)
    out = build_variants(train, ["none", "shuffle"], seed=1)
    for exs in out.values():
        assert [e.id for e in exs] == [e.id for e in train]


# --------------------------------------------------------------------------- lengths


def test_length_zero_equals_none():
    train = realistic_train(40)
    out = build_variants(train, ["none", "length_0"], seed=1)
    assert [e.explanation for e in out["length_0"]] == [e.explanation for e in out["none"]]
    assert all(e.explanation == "" for e in out["length_0"])


@pytest.mark.parametrize("n", PAPER_LENGTHS)
def test_length_keeps_first_n_words_exactly(n):
    train = realistic_train(60)
    train.append(ex("ws", "First  word,\nsecond\tthird   fourth five six seven eight nine ten eleven"))
    out = build_variants(train, [f"length_{n}", "assessment"], seed=1)
    for src, got, full in zip(train, out[f"length_{n}"], out["assessment"]):
        words = getattr(src, BASE).split()
        assert got.explanation.split() == words[:n]
        if len(words) <= n:
            assert got.explanation == full.explanation
    assert out[f"length_{n}"][-1].explanation == {
        0: "",
        5: "First  word,\nsecond\tthird   fourth",
        10: "First  word,\nsecond\tthird   fourth five six seven eight nine",
    }.get(n, out["assessment"][-1].explanation)


def test_length_truncates_the_assessment_not_the_confidence():
    e = ex(1, "alpha beta gamma", confidence="delta epsilon")
    assert build_variants([e], ["length_2"], seed=0)["length_2"][0].explanation == "alpha beta"
    assert BASE == "assessment"


# --------------------------------------------------------------------------- random words


def test_word_counts_preserved_for_every_random_variant():
    train = realistic_train(200)
    train.append(ex("punct", "5/5 -- ok!!", label=2))  # 3 whitespace words, one token
    train.append(ex("empty", "", label=4))
    out = build_variants(train, list(RANDOM_VARIANTS), seed=SEED)
    for name in RANDOM_VARIANTS:
        for src, got in zip(train, out[name]):
            assert len(got.explanation.split()) == len(src.assessment.split()), (name, src.id)
            assert got.explanation == " ".join(got.explanation.split())
        assert by_id(out[name])["empty"] == ""


def test_associated_draws_only_from_same_label_pool():
    train = [
        ex(1, "Apple banana, the apple.", label=1),
        ex(2, "Banana cherry is it.", label=1),
        ex(3, "Robotic scripted wording and tone.", label=4),
        ex(4, "Drift drift offtopic.", label=5),
    ] + [ex(f"n{i}", " ".join(["word"] * 40), label=1) for i in range(3)]
    label1 = {"apple", "banana", "cherry", "word"}
    pools = pool_words(train)
    assert set(pools["label_1"]) == label1
    assert not set(pools["label_1"]) & {"robotic", "scripted", "wording", "tone", "drift", "offtopic"}
    out = build_variants(train, ["associated", "weighted_associated"], seed=SEED)
    for name in ("associated", "weighted_associated"):
        for src, got in zip(train, out[name]):
            pool = set(pools[f"label_{src.label}"])
            assert set(got.explanation.split()) <= pool, (name, src.id)
    drawn = {w for e in out["associated"] if e.label == 1 for w in e.explanation.split()}
    assert drawn == label1  # uniform: each of the 4 words shows up over 128 draws


def test_shuffle_uses_all_training_explanations():
    train = [ex(1, "Apple banana.", label=1), ex(2, "Cherry.", label=2)] + [
        ex(f"n{i}", " ".join(["xylophone"] * 60), label=3) for i in range(5)
    ]
    out = build_variants(train, ["shuffle"], seed=SEED)["shuffle"]
    drawn = {w for e in out for w in e.explanation.split()}
    assert drawn == {"apple", "banana", "cherry", "xylophone"}


def weighted_fixture() -> tuple[list[Example], dict[str, float]]:
    """A pool of 5 words with frequencies 1, 2, 4, 8, 16 and a carrier needing 6,000 draws."""
    freqs = {"alpha": 1, "bravo": 2, "charlie": 4, "delta": 8, "echo": 16}
    pool_text = " ".join(w for w, k in freqs.items() for _ in range(k))
    total = sum(freqs.values())
    train = [
        ex("pool", pool_text, label=2),
        ex("carrier", " ".join(["the"] * 6000), label=2),
    ]  # stopwords only: adds nothing to the pool
    return train, {w: k / total for w, k in freqs.items()}


def test_weighted_samplers_follow_frequencies_uniform_do_not():
    train, p_freq = weighted_fixture()
    p_unif = {w: 1 / len(p_freq) for w in p_freq}
    crit = chi2_critical(len(p_freq) - 1)
    assert 18.4 < crit < 18.8
    out = build_variants(train, list(RANDOM_VARIANTS[1:]), seed=SEED)
    for name in ("weighted_shuffle", "weighted_associated"):
        obs = Counter(w for e in out[name] for w in e.explanation.split())
        assert sum(obs.values()) == 6000 + 31
        assert chi_square(obs, p_freq) < crit, name
        assert chi_square(obs, p_unif) > 100 * crit, name
    for name in ("shuffle", "associated"):
        obs = Counter(w for e in out[name] for w in e.explanation.split())
        assert chi_square(obs, p_unif) < crit, name
        assert chi_square(obs, p_freq) > 100 * crit, name


def test_pool_weights_are_token_counts():
    train, p = weighted_fixture()
    pools = pool_words(train)
    assert dict(pools["all"]) == {"alpha": 1, "bravo": 2, "charlie": 4, "delta": 8, "echo": 16}
    assert pools["all"] == pools["label_2"]


def test_test_split_words_never_enter_a_pool():
    train = realistic_train(300)
    test = [
        ex(f"t{i}", "Zymurgy quixotic flibbertigibbet " + t.assessment, label=t.label)
        for i, t in enumerate(realistic_train(50, seed=99))
    ]
    test_only = {w for t in test for w in content_words(t.assessment)} - {
        w for t in train for w in content_words(t.assessment)
    }
    assert {"zymurgy", "quixotic", "flibbertigibbet"} <= test_only
    pools = pool_words(train)
    assert not any(test_only & set(c) for c in pools.values())
    out = build_variants(train, ["shuffle", "associated", "weighted_shuffle", "weighted_associated"], seed=SEED)
    for exs in out.values():
        assert not any(set(e.explanation.split()) & test_only for e in exs)


def test_stopwords_never_in_pools():
    train = realistic_train(300)
    train.append(ex("sw", "It's the thing that we don’t like about it; however, tone.", label=1))
    stop = stopwords()
    assert {"the", "it's", "don't", "however"} <= stop
    pools = pool_words(train)
    for counter in pools.values():
        assert not set(counter) & stop
    out = build_variants(train, ["shuffle", "associated", "weighted_shuffle", "weighted_associated"], seed=SEED)
    for exs in out.values():
        for e in exs:
            assert not set(e.explanation.split()) & stop


def test_tokenisation():
    assert tokenize("The model’s reply: 5/5, well-written ÉLAN_x2") == [
        "the",
        "model's",
        "reply",
        "well",
        "written",
        "élan",
        "x",
    ]
    assert content_words("It's a clear, robotic reply.") == ["robotic", "reply"]


def test_fully_random_words_come_from_the_english_word_list():
    from english_words import get_english_words_set

    web2 = get_english_words_set(["web2"], lower=True, alpha=True)
    assert set(dictionary_words()) == web2
    train = realistic_train(100)
    out, stats = build_variants_with_stats(train, ["fully_random"], seed=SEED)
    drawn = [w for e in out["fully_random"] for w in e.explanation.split()]
    assert drawn and set(drawn) <= web2
    # uniform over ~234k words: almost no repeats, and mostly words that are not in the explanations
    assert len(set(drawn)) > 0.9 * len(drawn)
    assert stats["fully_random"].pool_sizes == {"dictionary": len(web2)}


# --------------------------------------------------------------------------- determinism


def test_deterministic_and_independent_of_order_and_other_variants():
    train = realistic_train(120)
    names = list(RANDOM_VARIANTS)
    a = build_variants(train, names, seed=SEED)
    b = build_variants(train, names, seed=SEED)
    shuffled = train[:]
    random.Random(3).shuffle(shuffled)
    c = build_variants(shuffled, list(reversed(names)), seed=SEED)
    for name in names:
        assert by_id(a[name]) == by_id(b[name]) == by_id(c[name])
    alone = build_variants(train, ["associated"], seed=SEED)  # built without the other variants
    assert by_id(alone["associated"]) == by_id(a["associated"])


def test_different_seeds_and_variants_differ():
    train = realistic_train(60)
    a = build_variants(train, ["shuffle", "weighted_shuffle"], seed=1)
    b = build_variants(train, ["shuffle"], seed=2)
    diff = sum(x.explanation != y.explanation for x, y in zip(a["shuffle"], b["shuffle"]) if x.explanation)
    nonempty = sum(1 for x in a["shuffle"] if x.explanation)
    assert diff == nonempty
    assert [e.explanation for e in a["shuffle"]] != [e.explanation for e in a["weighted_shuffle"]]


def test_same_output_across_processes_with_different_hash_salts():
    import os
    import subprocess
    import sys

    code = (
        "from explainft.records import Example, Turn\n"
        "from explainft.variants import build_variants\n"
        "t = (Turn('user', 'q?'), Turn('assistant', 'a.'))\n"
        "train = [Example(id=str(i), dataset='d', dimension='on_topic', turns=t, score=0.5, label=1 + i % 3,\n"
        "                 assessment=f'robotic tone {i} and scripted wording with missing detail x{i % 4}',\n"
        "                 confidence='') for i in range(30)]\n"
        "out = build_variants(train, ['fully_random', 'shuffle', 'weighted_associated'], seed=5)\n"
        "print(repr({k: [e.explanation for e in v] for k, v in out.items()}))\n"
    )
    outs = set()
    for hashseed in ("1", "2", "3"):
        r = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hashseed},
        )
        outs.add(r.stdout)
    assert len(outs) == 1 and "robotic" in outs.pop()


# --------------------------------------------------------------------------- empty pools


def test_empty_label_pool_is_an_error_naming_variant_and_label():
    train = [ex(1, "Robotic scripted tone.", label=4), ex(2, "It is what it is.", label=2)]  # label 2: only stopwords
    with pytest.raises(ConfigError) as e:
        build_variants(train, ["none", "weighted_associated"], seed=1)
    assert e.value.key == "variants.names"
    assert "variant 'weighted_associated'" in e.value.message
    assert "pool 'label_2' is empty" in e.value.message and "with label 2" in e.value.message
    # shuffle still works: the whole-split pool has words
    assert build_variants(train, ["shuffle"], seed=1)["shuffle"][1].explanation.count(" ") == 4


def test_empty_shuffle_pool_is_an_error():
    train = [ex(1, "It is what it is."), ex(2, "5/5 !!")]
    with pytest.raises(ConfigError, match=r"variant 'shuffle': pool 'all' is empty"):
        build_variants(train, ["shuffle"], seed=1)


def test_empty_pool_without_demand_is_fine():
    # label 2's only explanation is empty: nothing needs its pool
    train = [ex(1, "Robotic scripted tone.", label=4), ex(2, "", label=2)]
    out = build_variants(train, ["associated"], seed=1)["associated"]
    assert out[1].explanation == ""


# --------------------------------------------------------------------------- stats and speed


def test_stats():
    train = [ex(1, "Robotic scripted tone here.", label=4), ex(2, "", label=4), ex(3, "Natural wording.", label=1)]
    _, stats = build_variants_with_stats(train, ["none", "length_1", "associated", "shuffle"], seed=1)
    assert stats["none"].to_dict() == {
        "name": "none",
        "kind": "type",
        "n": 3,
        "mean_words": 0.0,
        "n_empty": 3,
        "pool_sizes": {},
    }
    assert stats["length_1"].mean_words == pytest.approx(2 / 3)
    assert stats["associated"].pool_sizes == {"label_1": 2, "label_4": 3}
    assert stats["associated"].mean_words == pytest.approx(6 / 3)
    assert stats["shuffle"].pool_sizes == {"all": 5}


def test_ten_thousand_examples_five_random_variants_are_fast():
    train = realistic_train(10_000)
    dictionary_words()  # the word list loads once per process (~0.2 s); time the building
    t = time.perf_counter()
    out = build_variants(train, list(RANDOM_VARIANTS), seed=SEED)
    elapsed = time.perf_counter() - t
    assert all(len(v) == 10_000 for v in out.values())
    assert elapsed < 15, elapsed  # about 1.5 s on 2 shared cores; the bound only catches a blow-up
