"""The Cornell Movie-Dialogs loader: the original Latin-1 ' +++$+++ ' text files.

Fixture ``fixtures/cornell/cornell movie-dialogs corpus/`` (Latin-1 bytes, the
zip's folder name, lines in reverse order) holds nine conversations:

1. m100/L1000  two lines, 'é' as byte 0xE9 in text and speaker name
2. m100/L1010  odd length (3 lines)
3. m100/L1020  two consecutive lines by RENÉE
4. m100/L1030  an empty text line (L1031) between two MARIE lines
5. m100/L1040  refers to L9999, which does not exist
6. m100/L1050  an unterminated lineID list
7. m101/L1060  uses L1060, a movie_lines.txt line with too few fields (line 23)
8. m101/L1070  its second line is empty: one turn left
9. m101/L1080  four alternating lines
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, load

from explainft.datasets import get
from explainft.datasets.prepare import prepare
from explainft.errors import ConfigError, RecordError
from explainft.records import Conversation, read_jsonl

NAME = "cornell_movie_dialogs"
FIXTURE = FIXTURES / "cornell"
CORPUS = FIXTURE / "cornell movie-dialogs corpus"
S = " +++$+++ "


def roles(c: Conversation) -> list[str]:
    return [t.role for t in c.turns]


def by_id(convs: list[Conversation]) -> dict[str, Conversation]:
    return {c.id.rsplit("/", 2)[-2] + "/" + c.id.rsplit("/", 1)[-1]: c for c in convs}


def write_corpus(
    root: Path,
    lines: list[str],
    convs: list[str],
    titles: list[str] | None = None,
    chars: list[str] | None = None,
    encoding: str = "iso-8859-1",
) -> Path:
    """Write the files (rows joined by newlines) into root/'cornell movie-dialogs corpus'."""
    d = root / "cornell movie-dialogs corpus"
    d.mkdir(parents=True)
    for name, rows in [
        ("movie_lines.txt", lines),
        ("movie_conversations.txt", convs),
        ("movie_titles_metadata.txt", titles),
        ("movie_characters_metadata.txt", chars),
    ]:
        if rows is not None:
            (d / name).write_bytes("".join(r + "\n" for r in rows).encode(encoding))
    return root


def line(lid: str, cid: str, name: str, text: str, mid: str = "m0") -> str:
    return S.join([lid, cid, mid, name, text])


def conv(ids: list[str], c1: str = "u0", c2: str = "u1", mid: str = "m0") -> str:
    return S.join([c1, c2, mid, repr(ids)])


BASIC_LINES = [line("L2", "u1", "B", "Fine."), line("L1", "u0", "A", "How are you?")]


# --------------------------------------------------------------------------- fixture format


def test_fixture_is_latin1_bytes():
    raw = (CORPUS / "movie_lines.txt").read_bytes()
    assert b"REN\xc9E" in raw and b"caf\xe9" in raw  # single bytes, not UTF-8 sequences
    assert b"\xc3" not in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_registry_and_module_constants():
    mod = get(NAME).loader()
    assert mod.__name__ == "explainft.datasets.cornell"
    assert "**/movie_lines.txt" in mod.RAW_FILES and "**/movie_conversations.txt" in mod.RAW_FILES
    assert mod.OPTIONS["encoding"] == (str, "iso-8859-1")


# --------------------------------------------------------------------------- the fixture


def test_fixture_skip_mode_outcomes_and_counts():
    convs, ctx = load(NAME, FIXTURE, on_error="skip")
    assert [c.id for c in convs] == [
        f"{NAME}/m100/L1000",
        f"{NAME}/m100/L1010",
        f"{NAME}/m100/L1020",
        f"{NAME}/m100/L1030",
        f"{NAME}/m101/L1080",
    ]
    s = ctx.summary()
    assert s["source_records"] == 9
    assert s["skipped"] == {"bad_literal": 1, "unknown_line": 2, "wrong_field_count": 1}
    assert s["dropped"] == {"too_short": 1}
    assert s["policy"] == {"dropped_empty_lines": 2, "merged_consecutive_turns": 2}
    assert sorted(ctx.files) == sorted(
        f"cornell movie-dialogs corpus/{n}"
        for n in (
            "movie_lines.txt",
            "movie_conversations.txt",
            "movie_titles_metadata.txt",
            "movie_characters_metadata.txt",
        )
    )


def test_fixture_latin1_text_roles_and_meta():
    convs, _ = load(NAME, FIXTURE, on_error="skip")
    c = by_id(convs)["m100/L1000"]
    assert [(t.role, t.speaker, t.text) for t in c.turns] == [
        ("user", "RENÉE", "Bonjour.  Un café?"),
        ("assistant", "JACQUES", "Oui, un café crème, s'il vous plaît."),
    ]
    assert c.dataset == NAME
    assert c.meta == {
        "movie_id": "m100",
        "line_ids": ["L1000", "L1001"],
        "characters": ["u900", "u901"],
        "source": {"file": "cornell movie-dialogs corpus/movie_conversations.txt", "line": 1},
        "title": "le café de ménilmontant",
        "year": "1989/I",
        "imdb_rating": 7.1,
        "imdb_votes": 1234,
        "genres": ["drama", "romance"],
        "character_meta": {
            "u900": {"name": "RENÉE", "gender": "f", "credit_position": 1},
            "u901": {"name": "JACQUES", "gender": "m", "credit_position": 2},
        },
    }
    # MARIE/PIERRE: '?' gender and credit position become null
    assert by_id(convs)["m100/L1030"].meta["character_meta"]["u902"] == {
        "name": "MARIE",
        "gender": None,
        "credit_position": None,
    }
    assert by_id(convs)["m101/L1080"].meta["character_meta"]["u911"]["credit_position"] is None


def test_odd_length_conversation_starts_with_assistant():
    convs, _ = load(NAME, FIXTURE, on_error="skip")
    c = by_id(convs)["m100/L1010"]
    assert [(t.role, t.speaker) for t in c.turns] == [
        ("assistant", "JACQUES"),
        ("user", "RENÉE"),
        ("assistant", "JACQUES"),
    ]
    assert c.response.text == "Because the café closes at noon."


def test_consecutive_lines_merge_and_empty_line_drop():
    convs, _ = load(NAME, FIXTURE, on_error="skip")
    c = by_id(convs)["m100/L1020"]
    assert [(t.role, t.speaker, t.text) for t in c.turns] == [
        ("user", "RENÉE", "The train is at six.\n\nAnd I packed already."),
        ("assistant", "JACQUES", "Then we leave at dawn."),
    ]
    # L1031 (PIERRE, empty) dropped, leaving two MARIE lines, which are merged
    c = by_id(convs)["m100/L1030"]
    assert [(t.role, t.speaker, t.text) for t in c.turns] == [
        ("user", "MARIE", "Who's there?\n\nHello?"),
        ("assistant", "PIERRE", "It's me."),
    ]
    assert c.meta["line_ids"] == ["L1030", "L1031", "L1032", "L1033"]


def test_consecutive_roles_keep():
    convs, ctx = load(NAME, FIXTURE, {"consecutive_roles": "keep"}, on_error="skip")
    c = by_id(convs)["m100/L1020"]
    assert roles(c) == ["user", "user", "assistant"]
    assert [t.speaker for t in c.turns] == ["RENÉE", "RENÉE", "JACQUES"]
    assert ctx.policy["kept_consecutive_turns"] == 2 and "merged_consecutive_turns" not in ctx.policy


def test_fixture_raise_mode_stops_at_the_short_line():
    with pytest.raises(RecordError) as ei:
        load(NAME, FIXTURE)
    e = ei.value
    assert e.reason == "wrong_field_count" and e.file.endswith("movie_lines.txt") and e.line == 23
    assert "movie_lines.txt:23" in str(e) and "expected 5 fields" in str(e)


def test_utf8_decoding_of_latin1_fixture_fails_naming_file_and_line():
    with pytest.raises(RecordError) as ei:
        load(NAME, FIXTURE, {"encoding": "utf-8"})
    e = ei.value
    # line 2 is the first with a Latin-1 byte (L1050, RENÉE)
    assert e.reason == "bad_encoding" and e.file.endswith("movie_lines.txt") and e.line == 2
    assert "movie_lines.txt:2" in str(e) and "utf-8" in str(e)
    # skipped: 8 lines, 1 title and 4 character rows hold a Latin-1 byte; conversations needing those lines fail
    convs, ctx = load(NAME, FIXTURE, {"encoding": "utf-8"}, on_error="skip")
    assert ctx.skipped["bad_encoding"] == 13
    assert [c.id for c in convs] == [f"{NAME}/m100/L1030", f"{NAME}/m101/L1080"]
    assert "title" not in convs[0].meta and convs[1].meta["title"] == "night shift"


def test_utf8_reencoded_copy_loads_the_same(tmp_path):
    for src in CORPUS.iterdir():
        dst = tmp_path / "corpus" / src.name
        dst.parent.mkdir(exist_ok=True)
        dst.write_bytes(src.read_bytes().decode("iso-8859-1").encode("utf-8"))
    latin, _ = load(NAME, FIXTURE, on_error="skip")
    utf8, ctx = load(NAME, tmp_path, {"encoding": "utf-8"}, on_error="skip")
    assert [c.turns for c in utf8] == [c.turns for c in latin]
    assert ctx.skipped["bad_encoding"] == 0
    # and the default Latin-1 reading of the UTF-8 copy is mojibake, not an error: the option matters
    mojibake, _ = load(NAME, tmp_path, on_error="skip")
    assert mojibake[0].turns[0].speaker == "RENÃ\x89E"


# --------------------------------------------------------------------------- the real excerpt


def test_real_excerpt(shared_samples):
    convs, ctx = load(NAME, shared_samples / "cornell_movie_dialogs")
    assert len(convs) == 15
    assert ctx.summary()["source_records"] == 15
    assert ctx.summary()["skipped_total"] == ctx.summary()["dropped_total"] == 0
    assert ctx.policy == {}  # the excerpt strictly alternates and has no empty line
    assert sum(len(c.meta["line_ids"]) for c in convs) == 41
    assert sum(1 for c in convs if len(c.turns) == 2) == 9
    assert sorted(len(c.turns) for c in convs) == [2] * 9 + [3, 3, 4, 4, 4, 5]

    first = convs[0]
    assert first.id == f"{NAME}/m0/L194"
    assert first.meta["line_ids"] == ["L194", "L195", "L196", "L197"]
    assert [(t.role, t.speaker) for t in first.turns] == [("user", "BIANCA"), ("assistant", "CAMERON")] * 2
    assert first.turns[0].text == (
        "Can we make this quick?  Roxanne Korrine and Andrew Barrett are having an "
        "incredibly horrendous public break- up on the quad.  Again."
    )
    assert first.turns[1].text == "Well, I thought we'd start with pronunciation, if that's okay with you."
    assert first.turns[2].text == "Not the hacking and gagging and spitting part.  Please."
    assert first.response.text == "Okay... then how 'bout we try out some French cuisine.  Saturday?  Night?"
    m = first.meta
    assert (m["movie_id"], m["title"], m["year"], m["imdb_rating"], m["imdb_votes"], m["genres"]) == (
        "m0",
        "10 things i hate about you",
        "1999",
        6.9,
        62847,
        ["comedy", "romance"],
    )
    assert m["characters"] == ["u0", "u2"]
    assert m["character_meta"] == {
        "u0": {"name": "BIANCA", "gender": "f", "credit_position": 4},
        "u2": {"name": "CAMERON", "gender": "m", "credit_position": 3},
    }

    # odd length: L271..L275 ends on BIANCA, so BIANCA is the assistant and the conversation starts with her
    c = next(c for c in convs if c.id.endswith("/L271"))
    assert [(t.role, t.speaker) for t in c.turns] == [("assistant", "BIANCA"), ("user", "CAMERON")] * 2 + [
        ("assistant", "BIANCA")
    ]
    assert c.response.text == "Forget French."
    # no value keeps the separator's spaces (the HF script's bug)
    assert all(t.text == t.text.strip() and t.speaker == t.speaker.strip() for c in convs for t in c.turns)


def test_real_excerpt_through_prepare(shared_samples, tmp_path):
    metrics = prepare(
        NAME,
        shared_samples / "cornell_movie_dialogs",
        tmp_path / "out.jsonl",
        tmp_path / "m.json",
        per_dataset=5,
        seed=3,
    )
    assert metrics["conversations"] == 15 and metrics["sampled"] == 5
    back = list(read_jsonl(tmp_path / "out.jsonl", Conversation))
    assert len(back) == 5 and all(c.meta["title"] == "10 things i hate about you" for c in back)


# --------------------------------------------------------------------------- file discovery and options


def test_metadata_files_are_optional(tmp_path):
    root = write_corpus(tmp_path, BASIC_LINES, [conv(["L1", "L2"])])
    [c], _ = load(NAME, root)
    assert c.meta == {
        "movie_id": "m0",
        "line_ids": ["L1", "L2"],
        "characters": ["u0", "u1"],
        "source": {"file": "cornell movie-dialogs corpus/movie_conversations.txt", "line": 1},
    }
    assert [(t.role, t.speaker, t.text) for t in c.turns] == [
        ("user", "A", "How are you?"),
        ("assistant", "B", "Fine."),
    ]


def test_missing_required_file(tmp_path):
    d = write_corpus(tmp_path, BASIC_LINES, [conv(["L1", "L2"])]) / "cornell movie-dialogs corpus"
    (d / "movie_lines.txt").unlink()
    with pytest.raises(RecordError) as ei:
        load(NAME, tmp_path)
    assert ei.value.reason == "missing_file" and "movie_lines.txt" in str(ei.value)


def test_two_copies_of_a_file_are_ambiguous(tmp_path):
    write_corpus(tmp_path, BASIC_LINES, [conv(["L1", "L2"])])
    shutil.copy(tmp_path / "cornell movie-dialogs corpus" / "movie_lines.txt", tmp_path / "movie_lines.txt")
    with pytest.raises(RecordError) as ei:
        load(NAME, tmp_path)
    assert ei.value.reason == "ambiguous_file" and "2 times" in str(ei.value)


@pytest.mark.parametrize(
    "options, key",
    [
        ({"encoding": "no-such-codec"}, "encoding"),
        ({"min_lines": 1}, "min_lines"),
        ({"empty_lines": "keep"}, "empty_lines"),
        ({"consecutive_roles": "drop"}, "consecutive_roles"),
        ({"speakers": "first"}, "speakers"),
    ],
)
def test_bad_options(options, key):
    with pytest.raises(ConfigError) as ei:
        load(NAME, FIXTURE, options)
    assert ei.value.key == f"sources.{NAME}.options.{key}"


def test_min_lines(tmp_path):
    convs, ctx = load(NAME, FIXTURE, {"min_lines": 3}, on_error="skip")
    assert [c.id.rsplit("/", 1)[-1] for c in convs] == ["L1010", "L1080"]
    assert ctx.dropped["too_short"] == 4  # the three 2-turn conversations and L1070


def test_empty_lines_error_skip_mode():
    convs, ctx = load(NAME, FIXTURE, {"empty_lines": "error"}, on_error="skip")
    assert ctx.skipped["empty_line"] == 2  # L1030 and L1070
    assert [c.id.rsplit("/", 1)[-1] for c in convs] == ["L1000", "L1010", "L1020", "L1080"]
    assert "dropped_empty_lines" not in ctx.policy


def test_empty_line_error_in_raise_mode(tmp_path):
    root = write_corpus(tmp_path, [line("L3", "u0", "A", "   "), *BASIC_LINES], [conv(["L1", "L2", "L3"])])
    with pytest.raises(RecordError) as ei:
        load(NAME, root, {"empty_lines": "error"})
    e = ei.value
    assert e.reason == "empty_line" and e.field == "text"
    assert e.file.endswith("movie_conversations.txt") and e.line == 1
    assert "L3 (movie_lines.txt:1)" in str(e)
    # by default the empty line is dropped and the conversation ends on L2
    [c], ctx = load(NAME, root)
    assert c.response.text == "Fine." and ctx.policy["dropped_empty_lines"] == 1


def test_empty_text_with_stripped_trailing_space(tmp_path):
    root = write_corpus(
        tmp_path, [S.join(["L3", "u0", "m0", "A"]) + S.rstrip(), *BASIC_LINES], [conv(["L1", "L2", "L3"])]
    )
    [c], ctx = load(NAME, root)
    assert len(c.turns) == 2 and ctx.policy["dropped_empty_lines"] == 1


def test_text_may_contain_the_separator(tmp_path):
    root = write_corpus(tmp_path, [line("L2", "u1", "B", f"a{S}b +++$+++c"), BASIC_LINES[1]], [conv(["L1", "L2"])])
    [c], _ = load(NAME, root)
    assert c.response.text == f"a{S}b +++$+++c"


# --------------------------------------------------------------------------- record errors


@pytest.mark.parametrize(
    "ids_literal, reason",
    [
        ("['L1', 'L2'", "bad_literal"),
        ("L1, L2", "bad_literal"),
        ("__import__('os')", "bad_literal"),
        ("('L1', 'L2')", "wrong_type"),
        ("'L1'", "wrong_type"),
        ("['L1', 2]", "wrong_type"),
        ("['L1', '']", "wrong_type"),
        ("[]", "empty_conversation"),
        ("['L1', 'L2', 'L1']", "repeated_line_id"),
    ],
)
def test_bad_utterance_list(tmp_path, ids_literal, reason):
    root = write_corpus(tmp_path, BASIC_LINES, [conv(["L1", "L2"]), S.join(["u0", "u1", "m0", ids_literal])])
    with pytest.raises(RecordError) as ei:
        load(NAME, root)
    e = ei.value
    assert (e.reason, e.field, e.line) == (reason, "utteranceIDs", 2)
    assert e.file.endswith("movie_conversations.txt")


def test_unknown_line_raise(tmp_path):
    root = write_corpus(tmp_path, BASIC_LINES, [conv(["L1", "L2"]), conv(["L5", "L1"])])
    with pytest.raises(RecordError) as ei:
        load(NAME, root)
    e = ei.value
    assert (e.reason, e.field, e.line, e.record) == ("unknown_line", "utteranceIDs", 2, f"{NAME}/m0/L5")
    assert "movie_conversations.txt:2" in str(e) and "L5" in str(e)


def test_skipped_malformed_line_makes_its_conversations_unknown_line(tmp_path):
    root = write_corpus(
        tmp_path, [*BASIC_LINES, S.join(["L3", "u0", "m0", "A"])], [conv(["L1", "L2"]), conv(["L2", "L3"])]
    )
    convs, ctx = load(NAME, root, on_error="skip")
    assert [c.id for c in convs] == [f"{NAME}/m0/L1"]
    assert dict(ctx.skipped) == {"wrong_field_count": 1, "unknown_line": 1}


def test_speaker_outside_the_pair(tmp_path):
    root = write_corpus(tmp_path, [*BASIC_LINES, line("L3", "u7", "C", "Hi.")], [conv(["L1", "L2", "L3"])])
    with pytest.raises(RecordError) as ei:
        load(NAME, root)
    e = ei.value
    assert (e.reason, e.field, e.line) == ("speaker_not_in_pair", "characterID", 1)
    assert "u7" in str(e) and "movie_lines.txt:3" in str(e)


def test_line_of_another_movie(tmp_path):
    root = write_corpus(tmp_path, [*BASIC_LINES, line("L3", "u0", "A", "Hi.", mid="m9")], [conv(["L1", "L2", "L3"])])
    with pytest.raises(RecordError) as ei:
        load(NAME, root)
    assert (ei.value.reason, ei.value.field) == ("movie_mismatch", "movieID")


def test_duplicate_conversation_id(tmp_path):
    root = write_corpus(tmp_path, BASIC_LINES, [conv(["L1", "L2"]), conv(["L1"])])
    with pytest.raises(RecordError) as ei:
        load(NAME, root)
    e = ei.value
    assert (e.reason, e.line, e.record) == ("duplicate_id", 2, f"{NAME}/m0/L1")


def test_duplicate_line_id(tmp_path):
    root = write_corpus(tmp_path, [*BASIC_LINES, line("L1", "u0", "A", "Again")], [conv(["L1", "L2"])])
    with pytest.raises(RecordError) as ei:
        load(NAME, root)
    assert (ei.value.reason, ei.value.line) == ("duplicate_line_id", 3) and "line 2" in str(ei.value)


def test_one_speaker_only_is_too_short(tmp_path):
    root = write_corpus(tmp_path, [line("L2", "u0", "A", "Still me."), BASIC_LINES[1]], [conv(["L1", "L2"])])
    convs, ctx = load(NAME, root)
    assert convs == [] and ctx.dropped["too_short"] == 1 and ctx.policy["merged_consecutive_turns"] == 1
    convs, ctx = load(NAME, root, {"consecutive_roles": "keep"})  # two assistant turns, no user turn
    assert convs == [] and ctx.dropped["too_short"] == 1


@pytest.mark.parametrize(
    "file, row, reason, field",
    [
        ("titles", S.join(["m0", "t", "1999", "6.9", "['comedy']"]), "wrong_field_count", None),
        ("titles", S.join(["m0", "t", "1999", "high", "10", "['comedy']"]), "bad_value", "imdb_rating"),
        ("titles", S.join(["m0", "t", "1999", "6.9", "many", "['comedy']"]), "bad_value", "imdb_votes"),
        ("titles", S.join(["m0", "t", "1999", "6.9", "10", "['comedy'"]), "bad_literal", "genres"),
        ("titles", S.join(["m0", "t", "1999", "6.9", "10", "'comedy'"]), "wrong_type", "genres"),
        ("chars", S.join(["u0", "A", "m0", "t", "f"]), "wrong_field_count", None),
        ("chars", S.join(["u0", "A", "m0", "t", "f", "first"]), "bad_value", "credit_position"),
        ("chars", S.join(["", "A", "m0", "t", "f", "1"]), "missing_field", "characterID"),
    ],
)
def test_malformed_metadata_lines(tmp_path, file, row, reason, field):
    good_title = S.join(["m1", "other", "1989/I", "5.0", "7", "[]"])
    good_char = S.join(["u1", "B", "m0", "t", "m", "?"])
    titles = [good_title, row] if file == "titles" else [good_title]
    chars = [good_char, row] if file == "chars" else [good_char]
    root = write_corpus(tmp_path, BASIC_LINES, [conv(["L1", "L2"])], titles, chars)
    with pytest.raises(RecordError) as ei:
        load(NAME, root)
    e = ei.value
    name = "movie_titles_metadata.txt" if file == "titles" else "movie_characters_metadata.txt"
    assert (e.reason, e.field, e.line) == (reason, field, 2) and e.file.endswith(name)
    # skipped: the conversation loads without that movie's or character's metadata
    [c], ctx = load(NAME, root, on_error="skip")
    assert ctx.skipped[reason] == 1
    assert "title" not in c.meta
    assert c.meta["character_meta"] == {"u1": {"name": "B", "gender": "m", "credit_position": None}}


def test_empty_genres_list_and_year_string(tmp_path):
    root = write_corpus(tmp_path, BASIC_LINES, [conv(["L1", "L2"])], [S.join(["m0", "t", "1989/I", "5.0", "7", "[]"])])
    [c], _ = load(NAME, root)
    assert (c.meta["year"], c.meta["genres"], c.meta["imdb_rating"]) == ("1989/I", [], 5.0)
