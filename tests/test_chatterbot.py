"""The embedded demo corpus: chatterbot dialogues and their perturbed twin."""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from pathlib import Path

import pytest
from conftest import FIXTURES, load

from explainft.errors import ConfigError, RecordError

RAW = FIXTURES / "chatterbot"


def by_id(convs):
    return {c.id: c for c in convs}


def test_roles_are_assigned_backwards_from_the_response_and_text_is_verbatim():
    convs, ctx = load("chatterbot", RAW, on_error="skip")
    c = by_id(convs)
    odd = c["chatterbot/greetings/0001"]
    assert [(t.role, t.text) for t in odd.turns] == [
        ("assistant", "Good morning, how are you?"),
        ("user", "I am doing well, how about you?"),
        ("assistant", "I'm also good."),
    ]
    # YAML scalars stay text: "Yes" is not True, '1984' is not an int
    assert c["chatterbot/greetings/0002"].response.text == "Yes"
    assert c["chatterbot/greetings/0004"].turns[0].text == "Quoted: with a colon"
    assert c["chatterbot/greetings/0004"].response.text == "1984"
    assert odd.meta == {
        "category": "greetings",
        "index": 1,
        "n_lines": 3,
        "source": {"file": "data/english/greetings.yml", "line": 6},
    }
    assert odd.dataset == "chatterbot" and odd.context is None


def test_counts_drops_and_skips_exactly():
    convs, ctx = load("chatterbot", RAW, on_error="skip")
    # greetings: 5 dialogues, one of a single line (dropped); trivia: 4, two malformed; science: 3
    assert len(convs) == 4 + 2 + 3
    assert ctx.source_records == 12
    assert dict(ctx.dropped) == {"too_short": 1}
    assert dict(ctx.skipped) == {"wrong_type": 2}
    assert ctx.files == ["data/english/greetings.yml", "data/english/science.yml", "data/english/trivia.yml"]


def test_malformed_dialogue_raises_with_file_line_and_field():
    with pytest.raises(RecordError) as ei:
        load("chatterbot", RAW, on_error="raise")
    e = ei.value
    assert (Path(e.file).name, e.line, e.field, e.reason) == ("trivia.yml", 6, "conversations[1]", "wrong_type")
    assert "trivia.yml:6" in str(e)


def test_nested_line_is_an_error_naming_the_line_index(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    (d / "x.yml").write_text("conversations:\n- - What is the capital?\n  - - Paris\n", encoding="utf-8")
    with pytest.raises(RecordError) as ei:
        load("chatterbot", d)
    assert (ei.value.field, ei.value.line) == ("conversations[0][1]", 2)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"conversations: [[a, b]\n", "bad_yaml"),
        (b"- just\n- a list\n", "wrong_type"),
        (b"categories: [x]\n", "missing_field"),
        (b"conversations:\n- - caf\xe9?\n  - oui\n", "bad_encoding"),
    ],
)
def test_broken_files_are_record_errors_or_counted_skips(tmp_path, content, reason):
    d = tmp_path / "raw"
    d.mkdir()
    (d / "bad.yml").write_bytes(content)
    (d / "good.yml").write_text("conversations:\n- - Hi\n  - Hello there\n", encoding="utf-8")
    with pytest.raises(RecordError) as ei:
        load("chatterbot", d)
    assert ei.value.reason == reason and Path(ei.value.file).name == "bad.yml"
    convs, ctx = load("chatterbot", d, on_error="skip")
    assert [c.id for c in convs] == ["chatterbot/good/0000"]
    assert dict(ctx.skipped) == {reason: 1}


def test_perturbed_twin_records_every_perturbation_and_is_deterministic():
    a, ctx = load("chatterbot_perturbed", RAW, on_error="skip")
    b, _ = load("chatterbot_perturbed", RAW, on_error="skip")
    assert [x.to_dict() for x in a] == [y.to_dict() for y in b]
    clean = by_id(load("chatterbot", RAW, on_error="skip")[0])
    assert len(a) == len(clean)
    for c in a:
        base = clean[c.id.replace("chatterbot_perturbed/", "chatterbot/")]
        assert c.dataset == "chatterbot_perturbed"
        assert c.turns[:-1] == base.turns[:-1]  # only the response changes
        assert c.meta["original_response"] == base.response.text
        kinds = [p["kind"] for p in c.meta["perturbations"]]
        if not kinds:
            assert c.response.text == base.response.text
        for p in c.meta["perturbations"]:
            if p["kind"] == "swap":
                donor = clean[p["donor"]]
                assert donor.id != base.id
    counted = sum(v for k, v in ctx.policy.items() if k.startswith("perturbed_"))
    assert counted == sum(len(c.meta["perturbations"]) for c in a)


def test_each_perturbation_kind_does_what_it_says():
    convs, _ = load(
        "chatterbot_perturbed",
        RAW,
        on_error="skip",
        options={"keep_share": 0.0, "double_share": 0.0, "kinds": ["truncate"]},
    )
    for c in convs:
        (p,) = c.meta["perturbations"]
        words = c.meta["original_response"].split()
        if p["kind"] == "truncate":
            assert len(c.response.text.split()) == p["kept_words"] == max(1, int(len(words) * 0.4))
            assert not c.response.text.endswith((".", "!", "?"))
        else:  # a one-word response cannot be truncated: substituted and recorded
            assert p["kind"] == "scripted" and len(words) == 1
    convs, _ = load(
        "chatterbot_perturbed",
        RAW,
        on_error="skip",
        options={"keep_share": 0.0, "double_share": 0.0, "kinds": ["repeat"]},
    )
    for c in convs:
        (p,) = c.meta["perturbations"]
        if p["kind"] == "repeat":
            assert c.response.text.count(p["phrase"]) >= p["times"]
            assert len(c.response.text.split()) == len(c.meta["original_response"].split()) + (p["times"] - 1) * len(
                p["phrase"].split()
            )
    convs, _ = load(
        "chatterbot_perturbed",
        RAW,
        on_error="skip",
        options={"keep_share": 0.0, "double_share": 0.0, "kinds": ["swap"]},
    )
    clean = by_id(load("chatterbot", RAW, on_error="skip")[0])
    for c in convs:
        (p,) = c.meta["perturbations"]
        assert c.response.text == clean[p["donor"]].response.text != c.meta["original_response"]
        # from another category when there is one
        assert clean[p["donor"]].meta["category"] != c.meta["category"]


def test_keep_share_one_leaves_everything_and_options_are_checked():
    convs, _ = load("chatterbot_perturbed", RAW, on_error="skip", options={"keep_share": 1.0})
    assert all(c.meta["perturbations"] == [] for c in convs)
    with pytest.raises(ConfigError) as ei:
        load("chatterbot_perturbed", RAW, options={"kinds": ["swap", "shout"]})
    assert ei.value.key == "sources.chatterbot_perturbed.options.kinds"
    with pytest.raises(ConfigError) as ei:
        load("chatterbot_perturbed", RAW, options={"keep_share": 1.5})
    assert ei.value.key == "sources.chatterbot_perturbed.options.keep_share"
    with pytest.raises(ConfigError) as ei:
        load("chatterbot", RAW, options={"keep_share": 0.5})
    assert ei.value.key == "sources.chatterbot.options.keep_share"
    with pytest.raises(ConfigError) as ei:
        load("chatterbot", RAW, options={"min_line": 2})
    assert ei.value.key == "sources.chatterbot.options.min_line" and "min_lines" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        load("chatterbot_perturbed", RAW, options={"perturbed": False})
    assert "fixed" in str(ei.value)


def test_the_shipped_corpus_loads_with_its_one_malformed_dialogue(tmp_path):
    spec = importlib.util.find_spec("chatterbot_corpus")
    assert spec is not None, "chatterbot-corpus must be installed (requirements.lock)"
    src = Path(spec.submodule_search_locations[0]) / "data" / "english"
    shutil.copytree(src, tmp_path / "data" / "english")
    kept, kctx = load("chatterbot", tmp_path, options={"duplicates": "keep"}, on_error="skip")
    assert len(kept) == 2025 and kctx.source_records == 2026
    assert dict(kctx.skipped) == {"wrong_type": 1} and not kctx.dropped
    assert Counter(c.meta["category"] for c in kept)["tech support"] == 1050
    # the corpus repeats dialogues word for word: 898 are distinct, and tech support holds 1,050 dialogues of
    # which only a few are distinct
    convs, ctx = load("chatterbot", tmp_path, on_error="skip")
    assert len(convs) == 898 and ctx.source_records == 2026
    assert dict(ctx.dropped) == {"duplicate_dialogue": 2025 - 898}
    assert len({tuple(t.text for t in c.turns) for c in convs}) == 898
    cats = Counter(c.meta["category"] for c in convs)
    assert cats["tech support"] < 30 and len(cats) == 21
    # the first copy is kept: every distinct dialogue keeps its earliest id
    first = {}
    for c in kept:
        first.setdefault(tuple(t.text for t in c.turns), c.id)
    assert sorted(c.id for c in convs) == sorted(first.values())
    twin, tctx = load("chatterbot_perturbed", tmp_path, on_error="skip")
    assert [c.id.split("/", 1)[1] for c in twin] == [c.id.split("/", 1)[1] for c in convs]
    assert all(t.group == c.group for t, c in zip(twin, convs))  # a twin shares its original's group
    n_kinds = Counter(len(c.meta["perturbations"]) for c in twin)
    # about 15% kept, of the rest about 30% doubled (seeded, so exact)
    assert 0.10 < n_kinds[0] / len(twin) < 0.20
    assert 0.2 < n_kinds[2] / (len(twin) - n_kinds[0]) < 0.4
