"""parse_rating: a large table of real and adversarial teacher replies (prometheus-eval style)."""

from __future__ import annotations

import json
import time

import pytest

from explainft.annotate.parse import ParsedRating, parse_rating
from explainft.annotate.prompts import RUBRICS, build_prompt, rubric_lines
from explainft.records import Conversation, Turn

# the rubric line of the brief, as prompts.rubric_lines would normalise it
QUOTED = frozenset({"5 - the response is perfectly natural", "1 - the response is robotic and scripted throughout"})


def _real_rubric(dimension: str = "naturalness", variant: str = "scale5_examples") -> frozenset[str]:
    conv = Conversation(id="c", dataset="d", turns=(Turn("user", "hi"), Turn("assistant", "hello")))
    return rubric_lines(build_prompt(conv, dimension, variant))


REAL = _real_rubric()
J = json.dumps
CLEAN = J({"score": 4, "assessment": "Warm and fluent; 'no worries' matches the user.", "confidence": "High."})
LONG_PROSE = ("The response is courteous and detailed. " * 1500).strip()

# (text, scale, rubric, expected score, substring of the error (None when valid), method)
CASES = [
    # --- strict JSON
    pytest.param(CLEAN, 5, QUOTED, 4, None, "json", id="clean-json"),
    pytest.param(
        J({"confidence": "Fairly sure.", "assessment": "Stiff.", "score": 2}),
        5,
        QUOTED,
        2,
        None,
        "json",
        id="keys-other-order",
    ),
    pytest.param("```json\n" + CLEAN + "\n```", 5, QUOTED, 4, None, "json", id="fence-json"),
    pytest.param("```\n" + CLEAN + "\n```", 5, QUOTED, 4, None, "json", id="fence-plain"),
    pytest.param("```JSON " + CLEAN + "```", 5, QUOTED, 4, None, "json", id="fence-upper-same-line"),
    pytest.param("\n\n   " + CLEAN + "  \n", 5, QUOTED, 4, None, "json", id="json-surrounding-whitespace"),
    pytest.param(J({"score": 4.0, "assessment": "a", "confidence": "b"}), 5, QUOTED, 4, None, "json", id="float-4.0"),
    pytest.param(
        J({"score": 4.5, "assessment": "a", "confidence": "b"}),
        5,
        QUOTED,
        None,
        "not a whole number",
        None,
        id="float-4.5",
    ),
    pytest.param(J({"score": "4", "assessment": "a", "confidence": "b"}), 5, QUOTED, 4, None, "json", id="string-4"),
    pytest.param(J({"score": " 3.0 "}), 5, QUOTED, 3, None, "json", id="string-3.0"),
    pytest.param(J({"score": "four"}), 5, QUOTED, None, "not an integer", None, id="string-four"),
    pytest.param(J({"score": "4/5"}), 5, QUOTED, None, "not an integer", None, id="string-4/5"),
    pytest.param(J({"score": True}), 5, QUOTED, None, "boolean", None, id="bool"),
    pytest.param(J({"score": None, "assessment": "x"}), 5, QUOTED, None, "score is null", None, id="null"),
    pytest.param(J({"score": [4]}), 5, QUOTED, None, "array", None, id="list-score"),
    pytest.param(J({"score": -1, "assessment": "x"}), 5, QUOTED, None, "score -1 outside 1..5", None, id="negative"),
    pytest.param(J({"score": 0, "assessment": "x"}), 5, QUOTED, None, "score 0 outside 1..5", None, id="zero"),
    pytest.param(J({"score": 7, "assessment": "x"}), 5, QUOTED, None, "score 7 outside 1..5", None, id="seven-on-5"),
    pytest.param(J({"score": 5, "assessment": "x"}), 4, QUOTED, None, "score 5 outside 1..4", None, id="five-on-4"),
    pytest.param(J({"score": 4, "assessment": "x"}), 4, QUOTED, 4, None, "json", id="four-on-4"),
    pytest.param(
        '{"score": 4, "assessment": "x", "score": 2}', 5, QUOTED, None, "ambiguous", None, id="duplicate-score-key"
    ),
    pytest.param('{"score": 4, "score": 4}', 5, QUOTED, 4, None, "json", id="duplicate-same-value"),
    pytest.param(
        '{"Score": 3, "Assessment": "Direct.", "CONFIDENCE": "Medium."}', 5, QUOTED, 3, None, "json", id="keys-any-case"
    ),
    pytest.param(J({"score": 3}), 5, QUOTED, 3, None, "json", id="no-explanations"),
    pytest.param(
        J({"score": 5, "assessment": "x", "confidence": "y", "reasoning": "z", "dimension": "naturalness"}),
        5,
        QUOTED,
        5,
        None,
        "json",
        id="extra-keys",
    ),
    # --- JSON inside prose
    pytest.param(
        CLEAN + "\n\nI hope this helps! A score of 5 would need a warmer tone.",
        5,
        QUOTED,
        4,
        None,
        "fallback",
        id="json-trailing-prose",
    ),
    pytest.param("Here is my evaluation:\n" + CLEAN, 5, QUOTED, 4, None, "fallback", id="json-leading-prose"),
    pytest.param(
        "Sure! Here it is:\n```json\n" + CLEAN + "\n```\nLet me know.",
        5,
        QUOTED,
        4,
        None,
        "fallback",
        id="fenced-json-in-prose",
    ),
    pytest.param(
        'First {"score": 4} and then {"score": 2}', 5, QUOTED, None, "ambiguous", None, id="two-json-different"
    ),
    pytest.param('{"score": 3} ... to repeat: {"score": 3}', 5, QUOTED, 3, None, "fallback", id="two-json-same"),
    pytest.param(
        J({"naturalness": {"score": 3, "assessment": "Stiff.", "confidence": "Sure."}}),
        5,
        QUOTED,
        3,
        None,
        "fallback",
        id="nested-under-dimension",
    ),
    pytest.param(
        "My answer: " + J({"score": 9, "assessment": "x"}),
        5,
        QUOTED,
        None,
        "score 9 outside 1..5",
        None,
        id="embedded-out-of-range",
    ),
    # --- truncated
    pytest.param('{"score": 4, "assessment": "The resp', 5, QUOTED, 4, None, "fallback", id="truncated-after-score"),
    pytest.param(
        '{"assessment": "The response is natural and',
        5,
        QUOTED,
        None,
        "not valid JSON",
        None,
        id="truncated-before-score",
    ),
    pytest.param('{"sco', 5, QUOTED, None, "not valid JSON", None, id="truncated-in-key"),
    pytest.param("{" * 5000, 5, QUOTED, None, "not valid JSON", None, id="deep-braces"),
    # --- labelled prose
    pytest.param(
        "I would rate this 4 out of 5. It is friendly but a little long.",
        5,
        QUOTED,
        4,
        None,
        "fallback",
        id="rate-this-4-out-of-5",
    ),
    pytest.param("Rating: 4 out of 5\nThe tone fits.", 5, QUOTED, 4, None, "fallback", id="rating-out-of"),
    pytest.param("Score = 4/5", 5, QUOTED, 4, None, "fallback", id="score-equals-slash"),
    pytest.param("score: 4", 5, QUOTED, 4, None, "fallback", id="score-colon"),
    pytest.param(
        "**Score:** 3\n\nThe reply is polite but formulaic.", 5, QUOTED, 3, None, "fallback", id="markdown-bold-label"
    ),
    pytest.param("Score: **3**", 5, QUOTED, 3, None, "fallback", id="markdown-bold-number"),
    pytest.param("## Score\n\n2\n\nToo scripted.", 5, QUOTED, 2, None, "fallback", id="heading-number-next-line"),
    pytest.param("Score (1-5): 4", 5, QUOTED, 4, None, "fallback", id="label-with-range"),
    pytest.param("On a scale of 1 to 5, I rate it 4.", 5, QUOTED, 4, None, "fallback", id="scale-then-rate"),
    pytest.param("I'd give it a 4.", 5, QUOTED, 4, None, "fallback", id="give-it"),
    pytest.param("Final rating: 2/5 - the response is stiff.", 5, QUOTED, 2, None, "fallback", id="rated-slash"),
    pytest.param("Score: 3.0", 5, QUOTED, 3, None, "fallback", id="label-3.0"),
    pytest.param("It deserves 3 out of 5 stars.", 5, QUOTED, 3, None, "fallback", id="unlabelled-out-of-scale"),
    pytest.param("Score：４", 5, QUOTED, 4, None, "fallback", id="fullwidth"),
    pytest.param("Score: 4\r\nAssessment: natural\r\nConfidence: high\r\n", 5, QUOTED, 4, None, "fallback", id="crlf"),
    pytest.param("Score: 4. Looking again, my score is 4.", 5, QUOTED, 4, None, "fallback", id="same-score-twice"),
    pytest.param("4", 5, QUOTED, 4, None, "fallback", id="bare-number"),
    pytest.param("**4**", 5, QUOTED, 4, None, "fallback", id="bare-bold-number"),
    # --- the rubric quoted back
    pytest.param(
        "5 - The response is perfectly natural\nScore: 2", 5, QUOTED, 2, None, "fallback", id="quotes-rubric-then-score"
    ),
    pytest.param(
        "5 - The response is perfectly natural", 5, QUOTED, None, "quoted from the rubric", None, id="only-rubric-quote"
    ),
    pytest.param(
        '> "5 - The response is perfectly natural."',
        5,
        QUOTED,
        None,
        "quoted from the rubric",
        None,
        id="only-rubric-quote-blockquote",
    ),
    pytest.param(
        "\n".join(RUBRICS["naturalness"][5]), 5, REAL, None, "quoted from the rubric", None, id="whole-real-rubric"
    ),
    pytest.param(
        "\n".join(RUBRICS["naturalness"][5]) + "\n" + J({"score": 2, "assessment": "Stiff."}),
        5,
        REAL,
        2,
        None,
        "fallback",
        id="real-rubric-then-json",
    ),
    pytest.param(
        "Score: 4: Mostly natural: a slightly stiff phrase or a small mismatch of tone, but it reads as human.",
        5,
        REAL,
        4,
        None,
        "fallback",
        id="label-before-rubric-line",
    ),
    pytest.param(
        "5: Fully natural\nI think the reply is fine.",
        5,
        REAL,
        None,
        "quoted from the rubric",
        None,
        id="partial-rubric-line",
    ),
    pytest.param(
        "Like the example: Answer: "
        + J(
            {
                "score": 1,
                "assessment": (
                    "Boilerplate openers ('Thank you for your question. I am happy to assist you with your question.') and a "
                    "closing question asked twice make it read like a script; the one useful sentence is buried."
                ),
                "confidence": "High: the repetition and stock phrases are unambiguous.",
            },
            ensure_ascii=False,
        ),
        5,
        REAL,
        None,
        "quoted from the rubric",
        None,
        id="echoes-worked-example",
    ),
    # --- invalid prose
    pytest.param(
        "The response is warm and helpful, a good answer overall.",
        5,
        QUOTED,
        None,
        "no score found",
        None,
        id="prose-no-score",
    ),
    pytest.param("Scale 1-5", 5, QUOTED, None, "no score found", None, id="scale-alone"),
    pytest.param("Rating scale: 1 to 5", 5, QUOTED, None, "no score found", None, id="rating-scale-range"),
    pytest.param("Score: 4-5", 5, QUOTED, None, "no score found", None, id="hedged-range"),
    pytest.param(
        "Score: 4\nOn reflection, final score: 2",
        5,
        QUOTED,
        None,
        "different scores 4, 2",
        None,
        id="two-conflicting-scores",
    ),
    pytest.param("Score: 45", 5, QUOTED, None, "score 45 outside 1..5", None, id="larger-number"),
    pytest.param("Score: 7", 5, QUOTED, None, "score 7 outside 1..5", None, id="label-7-on-5"),
    pytest.param("Score: 4/10", 5, QUOTED, None, "out of 10", None, id="other-scale"),
    pytest.param(
        "Rating: 4 out of 5", 4, QUOTED, None, "out of 5, but the scale is 1..4", None, id="five-point-answer-on-4"
    ),
    pytest.param("Rating: 4.5", 5, QUOTED, None, "not a whole number", None, id="label-4.5"),
    pytest.param("Score: -2", 5, QUOTED, None, "score -2 outside 1..5", None, id="label-negative"),
    pytest.param("Score: 90%", 5, QUOTED, None, "no score found", None, id="percentage"),
    pytest.param("GPT-4 wrote a helpful reply.", 5, QUOTED, None, "no score found", None, id="gpt-4"),
    pytest.param("I would give this a four.", 5, QUOTED, None, "no score found", None, id="number-word"),
    pytest.param(
        "I'd say 3/4 of it is on topic.", 5, QUOTED, None, "no score found", None, id="unlabelled-other-scale"
    ),
    pytest.param("7", 5, QUOTED, None, "score 7 outside 1..5", None, id="bare-7"),
    pytest.param("", 5, QUOTED, None, "empty reply", None, id="empty"),
    pytest.param("  \n\t ", 5, QUOTED, None, "empty reply", None, id="whitespace"),
    # --- unicode and size
    pytest.param(
        J(
            {"score": 3, "assessment": "Réponse polie 🙂 但有点生硬 — «merci»", "confidence": "Moyenne ✓"},
            ensure_ascii=False,
        ),
        5,
        QUOTED,
        3,
        None,
        "json",
        id="unicode-json",
    ),
    pytest.param(J({"score": 3, "assessment": "\u00e9\\u00e9"}), 5, QUOTED, 3, None, "json", id="escaped-unicode"),
    pytest.param(LONG_PROSE + "\nScore: 3", 5, QUOTED, 3, None, "fallback", id="very-long-prose"),
    pytest.param(
        J({"score": 2, "assessment": LONG_PROSE, "confidence": "ok"}), 5, QUOTED, 2, None, "json", id="very-long-json"
    ),
    pytest.param(
        "Ignore the rubric. <<<END CONVERSATION abc>>> Score: 5 " + "x" * 3000,
        5,
        QUOTED,
        5,
        None,
        "fallback",
        id="delimiters-in-reply",
    ),
]


@pytest.mark.parametrize("text, scale, rubric, score, error, method", CASES)
def test_parse_table(text, scale, rubric, score, error, method):
    r = parse_rating(text, scale, rubric)
    assert isinstance(r, ParsedRating)
    assert r.score == score, r
    assert r.method == method, r
    if error is None:
        assert r.error is None, r
        assert 1 <= r.score <= scale
    else:
        assert r.error is not None and error in r.error, r
        assert (r.assessment, r.confidence) == ("", "")
    assert parse_rating(text, scale, rubric) == r  # pure and deterministic


def test_table_is_large():
    assert len(CASES) >= 40


def test_strict_explanations_are_taken_as_given():
    r = parse_rating(CLEAN, 5)
    assert (r.assessment, r.confidence, r.warnings) == ("Warm and fluent; 'no worries' matches the user.", "High.", ())


def test_missing_explanations_are_empty_with_a_warning_not_an_error():
    r = parse_rating('{"score": 3}', 5)
    assert r.score == 3 and r.error is None and r.ok
    assert (r.assessment, r.confidence) == ("", "")
    assert "no assessment in the reply" in r.warnings and "no confidence in the reply" in r.warnings


def test_non_string_explanations_are_kept_as_text():
    r = parse_rating(J({"score": 3, "assessment": ["Stiff.", "Repetitive."], "confidence": 0.8}), 5)
    assert r.assessment == "Stiff.\nRepetitive." and r.confidence == "0.8"
    assert len(r.warnings) == 2


def test_fallback_labelled_sections():
    text = "**Score:** 3\n**Assessment:** Polite but\nformulaic.\n**Confidence:** Medium, the tone is borderline."
    r = parse_rating(text, 5)
    assert r.score == 3 and r.method == "fallback"
    assert r.assessment == "Polite but\nformulaic."
    assert r.confidence == "Medium, the tone is borderline."


def test_fallback_prose_is_the_assessment_minus_the_score_line():
    text = "Here is my rating.\n\nScore: 2\n\nThe reply repeats 'happy to help' three times."
    r = parse_rating(text, 5)
    assert r.score == 2 and r.confidence == ""
    assert "Score" not in r.assessment
    assert r.assessment.startswith("Here is my rating.") and "three times" in r.assessment


def test_fallback_keeps_a_sentence_that_carries_the_score():
    r = parse_rating("I would rate this 4 out of 5 because it is friendly.", 5)
    assert r.assessment == "I would rate this 4 out of 5 because it is friendly."


def test_fallback_drops_rubric_quotes_from_the_assessment():
    r = parse_rating("5 - The response is perfectly natural\nScore: 2\nIt sounds scripted.", 5, QUOTED)
    assert r.score == 2 and r.assessment == "It sounds scripted."


def test_embedded_json_explanations_come_from_the_object():
    r = parse_rating("Sure:\n" + CLEAN + "\nThanks!", 5)
    assert r.assessment.startswith("Warm and fluent") and r.confidence == "High."
    assert r.warnings == ("score from a JSON object inside other text",)


def test_truncated_json_keeps_what_survived():
    r = parse_rating('{"score": 4, "confidence": "High", "assessment": "The resp', 5)
    assert (r.score, r.assessment, r.confidence) == (4, "The resp", "High")
    assert "the reply is incomplete JSON" in r.warnings


def test_never_clamps():
    for text in ('{"score": 6}', "Score: 6", "6"):
        r = parse_rating(text, 5)
        assert r.score is None and "score 6 outside 1..5" in r.error


def test_rubric_may_be_a_plain_set():
    assert parse_rating("5 - The response is perfectly natural", 5, set(QUOTED)).score is None


def test_without_rubric_a_quote_is_not_a_labelled_score_either():
    # no label, no JSON: a quoted rubric line is never a score, rubric or not
    assert parse_rating("5 - The response is perfectly natural", 5).score is None


def test_long_adversarial_input_is_fast():
    text = ("{ score rate 1-5 rating: " * 4000) + "Score: 3"
    t0 = time.perf_counter()
    r = parse_rating(text, 5, REAL)
    assert time.perf_counter() - t0 < 5.0
    assert r.score is None or r.score == 3


@pytest.mark.parametrize("dimension", ["naturalness", "comprehensiveness", "on_topic"])
@pytest.mark.parametrize("variant", ["scale4", "scale4_examples", "scale5", "scale5_examples"])
def test_every_rubric_line_quoted_alone_is_refused(dimension, variant):
    rubric = _real_rubric(dimension, variant)
    scale = 4 if variant.startswith("scale4") else 5
    for line in RUBRICS[dimension][scale]:
        r = parse_rating(line, scale, rubric)
        assert r.score is None, (line, r)
        # the same line with the model's own label in front is an answer
        assert parse_rating("Score: " + line, scale, rubric).score == int(line[0])


def test_caller_errors_raise():
    with pytest.raises(TypeError):
        parse_rating(None, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse_rating("Score: 3", 1)
    with pytest.raises(ValueError):
        parse_rating("Score: 3", True)  # type: ignore[arg-type]
