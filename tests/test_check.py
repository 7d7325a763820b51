"""explainft check: items per dataset against the split (published sizes, headroom) and a replication's pins."""

from __future__ import annotations

import copy

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT

from explainft.cli import main as cli
from explainft.config import load_params
from explainft.errors import ConfigError
from explainft.stages.check import check_profile, headroom_floor, is_hub_id, published

PAPER = load_params(ROOT / "configs" / "paper.yaml")
MISTRAL_SHA = "27d67f1b5f57dc0953326b2601d68371d40ea8da"


def paper(change=None):
    p = copy.deepcopy(PAPER)
    if change:
        change(p)
    return p


def table(out: str) -> dict[str, list[str]]:
    """The printed items table as {dataset: [expected items, per_dataset, split needs]}."""
    rows = [[c.strip() for c in line.split("|")] for line in out.splitlines() if line.count("|") == 3]
    return {r[0]: r[1:] for r in rows[1:]}


# --------------------------------------------------------------------------- items against the split


def test_the_paper_profile_passes_and_prints_each_sources_size_against_the_split(capsys):
    summary = check_profile(paper())
    out, err = capsys.readouterr()
    assert summary["replication"] == "pinned"
    assert "split needs 16,000 = split.train 10,000 + split.validation 1,000 + split.test 5,000" in out
    assert table(out) == {
        "chatbot_arena": ["<= 66,000", "17,000", "16,000"],
        "hh_rlhf_chosen": ["<= 160,800", "17,000", "16,000"],
        "hh_rlhf_rejected": ["<= 160,800", "17,000", "16,000"],
        "amazonqa": ["<= ~923,000", "17,000", "16,000"],
        "coqa": ["116,630", "17,000", "16,000"],  # per-prefix items: 108,647 train + 7,983 validation turns
        "cornell_movie_dialogs": ["<= 83,097", "17,000", "16,000"],
    }
    assert "train 108,647 + validation 7,983 question-answer turns" in out
    assert err == ""  # 1,000 items of headroom (6%): no warning


def test_coqa_one_item_per_story_cannot_fill_the_paper_split(capsys):
    with pytest.raises(ConfigError) as ei:
        check_profile(paper(lambda p: p["sources"]["coqa"]["options"].update(items="final")))
    assert ei.value.key == "sources.coqa.options.items"
    assert "'coqa' gives 7,699 items" in str(ei.value) and "16,000" in str(ei.value)
    assert table(capsys.readouterr().out)["coqa"] == ["7,699", "17,000", "16,000"]  # the table comes first
    # one split only: the validation split's 500 stories or 7,983 turns
    only_dev = paper(lambda p: p["sources"]["coqa"]["options"].update(splits=["dev"]))
    with pytest.raises(ConfigError, match="7,983 items") as ei:
        check_profile(only_dev)
    assert ei.value.key == "sources.coqa.options.items"


def test_one_arena_side_and_a_bigger_split_fail_naming_the_option():
    with pytest.raises(ConfigError) as ei:
        check_profile(
            paper(
                lambda p: (
                    p["sources"]["chatbot_arena"]["options"].update(sides="a"),
                    p["split"].update(train=30000),
                    p["data"].update(per_dataset=40000),
                )
            )
        )
    assert ei.value.key == "sources.chatbot_arena.options.sides" and "at most 33,000 items" in str(ei.value)


def test_per_dataset_below_the_split_fails_naming_it():
    with pytest.raises(ConfigError) as ei:
        check_profile(paper(lambda p: p["data"].update(per_dataset=15999)))
    assert ei.value.key == "data.per_dataset"
    assert "15,999 conversations per dataset" in str(ei.value) and "at least 16,320" in str(ei.value)


def test_per_dataset_equal_to_the_split_warns(capsys):
    check_profile(paper(lambda p: p["data"].update(per_dataset=16000)))  # passes: a warning, not an error
    out, err = capsys.readouterr()
    assert err.startswith("WARNING: little headroom over what the split needs (16,000 = split.train 10,000")
    assert "coqa (0)" in err and "cornell_movie_dialogs (0)" in err and "merge.min_valid" in err
    assert "data.per_dataset >= 16,320" in err
    assert table(out)["coqa"] == ["116,630", "16,000", "16,000"]


@pytest.mark.parametrize("per, warned", [(16319, True), (16320, False)])
def test_the_headroom_rule_is_two_percent_of_what_the_split_needs(capsys, per, warned):
    assert headroom_floor(16000) == 320 and headroom_floor(16) == 1 and headroom_floor(1) == 1
    check_profile(paper(lambda p: p["data"].update(per_dataset=per)))
    assert ("WARNING" in capsys.readouterr().err) is warned


def test_per_dataset_null_takes_the_source_size_as_the_headroom(capsys):
    # all conversations: the Arena's 66,000 items leave 1,000 over 65,000, under 2% (1,300); the others have more
    check_profile(paper(lambda p: (p["data"].update(per_dataset=None), p["split"].update(train=59000))))
    out, err = capsys.readouterr()
    assert table(out)["chatbot_arena"] == ["<= 66,000", "all", "65,000"]
    assert "chatbot_arena (1,000)" in err and "data.per_dataset >= 66,300" in err and "coqa" not in err


def test_published_sizes_follow_the_options_and_the_fetched_files():
    hub = {"from": "hub", "files": ["helpful-base/train.jsonl.gz", "harmless-base/t*.jsonl.gz"]}
    hh = published("hh_rlhf_chosen", {}, hub)
    assert hh.items == 43_835 + 42_537 + 2_312 and hh.key == "sources.hh_rlhf_chosen.fetch.files"
    assert published("hh_rlhf_rejected", {}, {"from": "local", "path": "x"}).items == 160_800 + 8_552
    assert published("hh_rlhf_rejected", {}, {"from": "hub", "files": ["red/x.jsonl"]}) is None
    coqa = {"items": "prefixes", "max_turns": None, "splits": ["train"]}
    assert published("coqa", coqa, {}).items == 108_647
    assert published("coqa", {**coqa, "items": "final", "splits": None}, {}).items == 7_699
    assert published("coqa", {**coqa, "splits": ["test"]}, {}) is None  # not published: the loader says so
    assert published("amazonqa", {"answer": "each", "splits": ["train"]}, {}).shown() == "<= ~3,600,000"
    assert published("chatterbot", {}, {}) is None


# --------------------------------------------------------------------------- replication: everything pinned


@pytest.mark.parametrize("revision", ["main", "v1.0", "09be8c5", "09BE8C5BBC57CB3887F3A9732AD6AA7EC602A1FA"])
def test_a_replication_refuses_a_hub_fetch_not_pinned_to_a_commit(revision):
    with pytest.raises(ConfigError) as ei:
        check_profile(paper(lambda p: p["sources"]["hh_rlhf_rejected"]["fetch"].update(revision=revision)))
    assert ei.value.key == "sources.hh_rlhf_rejected.fetch.revision"
    assert repr(revision) in str(ei.value) and "Anthropic/hh-rlhf" in str(ei.value)
    # an omitted revision is the Hub's default branch, main
    with pytest.raises(ConfigError) as ei:
        check_profile(paper(lambda p: p["sources"]["coqa"]["fetch"].pop("revision")))
    assert ei.value.key == "sources.coqa.fetch.revision" and "'main'" in str(ei.value)


def test_a_profile_that_is_not_a_replication_may_follow_a_branch():
    for flag in (False, None):
        p = paper(lambda p: p["sources"]["coqa"]["fetch"].update(revision="main"))
        p["replication"] = flag
        if flag is None:
            del p["replication"]
        assert "replication" not in check_profile(p)


def test_a_replication_refuses_a_hub_tokenizer_without_its_commit():
    with pytest.raises(ConfigError) as ei:
        check_profile(paper(lambda p: p["stats"].pop("tokenizer_revision")))
    assert ei.value.key == "stats.tokenizer_revision" and "mistralai/Mistral-7B-v0.1" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        check_profile(paper(lambda p: p["stats"].update(tokenizer_revision="main")))
    assert ei.value.key == "stats.tokenizer_revision"


def test_a_replication_refuses_a_hub_student_without_its_commit():
    with pytest.raises(ConfigError) as ei:
        check_profile(paper(lambda p: p["train"].pop("student_revision")))
    assert ei.value.key == "train.student_revision" and "mistralai/Mistral-7B-v0.1" in str(ei.value)
    with pytest.raises(ConfigError) as ei:
        check_profile(paper(lambda p: p["train"].update(student_revision="refs/pr/1")))
    assert ei.value.key == "train.student_revision"


def test_local_folders_and_students_built_here_need_no_commit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inputs" / "mistral").mkdir(parents=True)
    assert not is_hub_id("inputs/mistral") and is_hub_id("inputs/other") and is_hub_id("gpt2")
    assert not any(is_hub_id(s) for s in ("tiny", "smollm2", "models/student", "./x", "/abs/x", "~/x"))

    def local(p):
        p["stats"].update(tokenizer="inputs/mistral", tokenizer_revision=None)
        p["train"].update(student="inputs/mistral", student_revision=None)

    assert check_profile(paper(local))["replication"] == "pinned"


def test_a_replication_pins_the_human_sets_it_downloads():
    # a Hub set on a branch
    def branch(p):
        p["human"]["sets"]["hh_rlhf_preference"]["fetch"]["revision"] = "main"

    with pytest.raises(ConfigError) as ei:
        check_profile(paper(branch))
    assert ei.value.key == "human.sets.hh_rlhf_preference.fetch.revision" and "'main'" in ei.value.message

    # a URL set without a sha256 for every file (USR and FED in configs/human-public.yaml have theirs)
    def unpinned_url(p):
        p["human"]["sets"]["fed"] = {
            "format": "fed",
            "fetch": {"from": "url", "urls": ["http://shikib.com/fed_data.json"]},
            "map": {"naturalness": "fluent"},
        }

    with pytest.raises(ConfigError) as ei:
        check_profile(paper(unpinned_url))
    assert ei.value.key == "human.sets.fed.fetch.sha256" and "fed_data.json" in ei.value.message

    def pinned_url(p):
        unpinned_url(p)
        p["human"]["sets"]["fed"]["fetch"]["sha256"] = {"fed_data.json": "0" * 64}

    assert check_profile(paper(pinned_url))["human"][-1] == "fed"


def test_replication_must_be_true_or_false():
    with pytest.raises(ConfigError) as ei:
        check_profile(paper(lambda p: p.update(replication="yes")))
    assert ei.value.key == "replication"


def test_the_cli_prints_the_table_and_the_warning(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text(yaml.safe_dump(paper(lambda p: p["data"].update(per_dataset=16000))))
    res = CliRunner().invoke(cli, ["check", str(prof)])
    assert res.exit_code == 0, res.output
    assert "coqa                  | 116,630        | 16,000      | 16,000" in res.output
    assert "WARNING: little headroom" in res.output and "ok (datasets: chatbot_arena" in res.output
