"""Every loader names the group its related conversations share (what the split keeps on one side), on the
fixtures in the published formats: twins across datasets, the sides of one prompt, the items of one story."""

from __future__ import annotations

from collections import defaultdict

from conftest import FIXTURES, load

from explainft.datasets.base import prompt_group
from explainft.records import Turn


def by_group(convs):
    out = defaultdict(set)
    for c in convs:
        out[c.group].add(c.id)
    return out


def test_prompt_group_folds_case_and_whitespace_and_reads_only_user_turns():
    a = (Turn("user", "Where is  Paris?"), Turn("assistant", "In France."))
    b = (Turn("user", "where is Paris?\n"), Turn("assistant", "No idea."))
    c = (Turn("user", "Where is Rome?"), Turn("assistant", "In France."))
    assert prompt_group(a) == prompt_group(b) != prompt_group(c)
    assert prompt_group(a).startswith("prompt:") and len(prompt_group(a)) == len("prompt:") + 16
    # the assistant's earlier turns do not change it (the two sides of a multi-turn battle differ there)
    d = (Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", "bye"), Turn("assistant", "ciao"))
    e = (Turn("user", "hi"), Turn("assistant", "hey there"), Turn("user", "bye"), Turn("assistant", "see you"))
    assert prompt_group(d) == prompt_group(e) != prompt_group(d[2:])


def test_hh_rlhf_chosen_and_rejected_share_their_line_group():
    chosen, _ = load("hh_rlhf_chosen", FIXTURES / "hh_rlhf" / "valid")
    rejected, _ = load("hh_rlhf_rejected", FIXTURES / "hh_rlhf" / "valid")
    rej = {c.id.split("/", 1)[1]: c for c in rejected}
    paired = [(c, rej[c.id.split("/", 1)[1]]) for c in chosen if c.id.split("/", 1)[1] in rej]
    assert paired
    for c, r in paired:
        assert c.group == r.group == prompt_group(c.turns)
        assert c.group.startswith("prompt:")


def test_arena_sides_share_the_battle_group():
    convs, _ = load("chatbot_arena", FIXTURES / "arena" / "valid")
    sides = defaultdict(dict)
    for c in convs:
        sides[c.meta["question_id"]][c.meta["side"]] = c
    both = [s for s in sides.values() if len(s) == 2]
    assert both
    for s in both:
        assert s["a"].group == s["b"].group
    assert len({s["a"].group for s in both}) == len(
        {tuple(t.text for t in s["a"].turns if t.role == "user") for s in both}
    )


def test_coqa_prefixes_share_the_story_group():
    convs, _ = load("coqa", FIXTURES / "coqa" / "valid", {"items": "prefixes"})
    groups = by_group(convs)
    stories = {c.meta["story_sha256"] for c in convs}
    assert len(groups) == len(stories) and all(g.startswith("coqa-story:") for g in groups)
    assert any(len(ids) > 1 for ids in groups.values())  # several prefixes of one story
    final, _ = load("coqa", FIXTURES / "coqa" / "valid")
    assert {c.group for c in final} == set(groups)  # the same story gives the same group in either mode


def test_amazonqa_answers_to_one_question_share_a_group():
    convs, _ = load("amazonqa", FIXTURES / "amazonqa" / "valid", {"answer": "each"})
    groups = by_group(convs)
    assert any(len(ids) > 1 for ids in groups.values())
    for c in convs:
        assert c.group == prompt_group((Turn("user", c.turns[0].text), Turn("assistant", "")))


def test_cornell_groups_are_the_conversations_and_chatterbot_twins_share_theirs():
    convs, _ = load("cornell_movie_dialogs", FIXTURES / "cornell", on_error="skip")  # the fixture has bad lines
    assert convs and all(c.group == c.id for c in convs)
    clean, _ = load("chatterbot", FIXTURES / "chatterbot", on_error="skip")
    twin, _ = load("chatterbot_perturbed", FIXTURES / "chatterbot", on_error="skip")
    assert [c.group for c in clean] == [c.group for c in twin]
    assert all(c.group == prompt_group(c.turns) for c in clean)
