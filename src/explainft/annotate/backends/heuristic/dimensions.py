"""Each dimension rated from the evidence: a quality ``q`` in [0, 1], how strong the evidence is, and notes.

Every function returns ``(q, strength, notes)``: ``strength`` in [0, 1] is how
clear-cut the dimension's evidence is (a strong repetition, boilerplate, cut
or vague signal, or an embedding cosine far from the middle that agrees with
the word-level evidence, is strong; word overlap alone is weak), and
``notes`` (:class:`~.wording.Notes`) are the observations an assessment may
cite, each with its severity and phrasings (:mod:`.wording` picks and words
them). The measures come from :mod:`.evidence`; the weights ``s_*``, ``c_w``
(``cov_w``), ``a_t``, ``a_v``, ``need_mult`` and ``e_w`` from the teacher's
profile (:mod:`.profiles`).

naturalness
    ``q = (1 - s_rep p_rep)(1 - s_script p_script)(1 - s_trunc t)(1 - s_trunc p_start)
    (1 - 0.3 p_copy)(1 - s_len p_len)(1 - p_inj)``.

comprehensiveness
    ``need`` (content words a full answer has, by request type) times the
    profile's ``need_mult``; ``adequacy = min(1, n_eff / need) ** 0.6 (1 - h + h depth)`` with headroom
    ``h`` = 0.3 for open requests and reported problems, 0.15 for wh-questions, else 0: requests that
    invite detail keep rewarding it, slowly.
    The weight ``c_w`` of the coverage ``cov`` halves for wh-questions (a
    factual answer need not repeat the question), and shrinks with depth, ``c_w (1 - depth)``: a
    substantive answer may cover the request in its own words.
    ``rel`` = on-topic quality below (before ``p_inj``): an answer to another
    question addresses none of this one.
    ``q = (c_w cov + (1 - c_w) adequacy) * min(1, 0.3 + 0.9 rel)
    (1 - a_t t s)(1 - a_v v s)(1 - p_inj)(1 - 0.8 refusal)(1 - 0.5 p_copy)`` with ``s = 1 - depth / 2``:
    a cut or a hedge costs what is missing, which is less once the answer has given much beyond the minimum.

on_topic
    lexical: ``q_lex`` (:class:`~.evidence.Evidence`).
    embedding (``embedding: true``): ``cos`` = cosine of mean-pooled
    all-MiniLM-L6-v2 embeddings of the last user turn and the core (or 0.9 x
    the cosine with earlier turns + context, if larger), rounded to 3
    decimals so that batch composition cannot move a score (:mod:`.embedder`);
    ``e = clip((cos - 0.08) / 0.47)``; ``q = (1 - e_w) q_lex + e_w e``, with
    ``e_w`` halved for cores of <= 2 words (a lone word embeds poorly) and
    unused when the core has no content words.
    Then ``q *= 1 - p_inj``.
"""

from __future__ import annotations

import math

from .evidence import NEED, TYPE_WORDS, Evidence
from .text import clip, quote, words
from .wording import Notes, injection_note, join_terms

# comprehensiveness: how much of the adequacy term is reserved for depth beyond the minimum, by request type;
# the weight of a refusal and of verbatim copying
HEADROOM = {"open": 0.3, "problem": 0.3, "wh": 0.15}
A_REFUSAL = 0.8
A_COPY = 0.5
S_COPY = 0.3  # naturalness


def naturalness(ev: Evidence, w: dict[str, float]) -> tuple[float, float, Notes]:
    """Repetition, stock phrasing, truncation, length out of proportion, and injections."""
    p_inj = ev.p_inj
    parts = [
        w["s_rep"] * ev.p_rep,
        w["s_script"] * ev.p_script,
        w["s_trunc"] * ev.truncation,
        w["s_trunc"] * ev.p_start,  # a cut at the start is a cut
        S_COPY * ev.p_copy,  # long stretches pasted from the given text: not written for this exchange
        w["s_len"] * ev.p_len,
        p_inj,
    ]
    q = math.prod(1 - clip(p) for p in parts)
    notes = Notes()
    if ev.injections:
        notes.add(1.0, *injection_note(ev))
    if ev.p_rep > 0:
        ph, k = quote(ev.rep_phrase, 50), ev.rep_times
        if ev.rep_kind == "adjacent":
            notes.add(
                ev.p_rep,
                f'The phrase "{ph}" is repeated {k} times in a row, which no person would say.',
                f'It says "{ph}" {k} times back to back, a mechanical repetition.',
            )
        elif ev.rep_kind == "sentence":
            notes.add(
                ev.p_rep,
                f'The sentence "{ph}" appears {k} times.',
                f'It repeats a whole sentence ("{ph}") {k} times.',
            )
        else:
            notes.add(
                ev.p_rep,
                f'The wording "{ph}" recurs {k} times, which reads as padded.',
                f'It reuses "{ph}" {k} times.',
            )
    if ev.stock:
        quoted = ", ".join(f'"{quote(s, 55)}"' for s, _ in ev.stock[:2])
        follow = any(k == "followup" for _, k in ev.stock)
        if ev.p_script >= 0.25:
            extra = " and closes with a needless follow-up question" if follow else ""
            notes.add(
                ev.p_script,
                f"It uses scripted assistant boilerplate ({quoted}){extra}.",
                f"Stock phrasing such as {quoted} makes it sound robotic{extra}.",
            )
        else:
            notes.add(
                ev.p_script,
                f"A stock phrase ({quoted}) makes it sound a little canned.",
                f"It leans on a set phrase ({quoted}), slightly formulaic.",
            )
    tail = quote(ev.trunc_tail, 40)
    if ev.truncation >= 0.5:
        notes.add(
            ev.truncation * 0.6,
            f'It breaks off mid-sentence ("…{tail}") with no closing punctuation.',
            f'The last sentence is left hanging at "{tail}", as if cut off.',
        )
    elif ev.truncation >= 0.3:
        notes.add(
            ev.truncation * 0.6,
            "It ends without final punctuation, which reads slightly unfinished.",
        )
    if ev.p_start > 0:
        notes.add(
            ev.p_start * 0.6,
            "It starts mid-sentence, as if its beginning were missing.",
            "The opening picks up in the middle of a sentence.",
        )
    if ev.p_copy > 0:
        notes.add(
            S_COPY * ev.p_copy,
            f"Much of it ({round(100 * ev.copy)}% of its phrases) is pasted word for word from the given text.",
        )
    if ev.p_len > 0:
        n_r, n_u = ev.n_resp_words, ev.n_user_words
        notes.add(
            ev.p_len,
            f"At {n_r} words it is out of proportion to the user's {n_u}-word message.",
            f"Its length ({n_r} words against the user's {n_u}) does not match the user's style.",
        )
    if not notes:
        end = "" if ev.truncation == 0 else " (only the final full stop is missing)"
        notes.add(
            0.0,
            f"It reads like something a person would say: no repeated phrases and no stock assistant wording{end}.",
            f"The wording is plain and conversational, with no boilerplate or repetition{end}.",
            f"Nothing in it sounds scripted or mechanical; it reads as a natural reply{end}.",
        )
    elif notes.top() < 0.15:
        notes.add(
            0.0,
            "Otherwise it reads naturally.",
            "Apart from that the wording is conversational.",
        )
    strong = max(ev.p_rep, ev.p_script, ev.truncation, ev.p_start, p_inj)
    strength = 1.0 if strong >= 0.5 else 0.8 if strong < 0.05 else 0.35 + 0.6 * strong
    return q, strength, notes


def relevance(ev: Evidence, w: dict[str, float], sim: float | None) -> float:
    """On-topic quality before the injection penalty: lexical, blended with the embedding cosine."""
    if sim is None or not ev.n_core:  # a reply with no content of its own: the cosine means nothing
        return ev.q_lex
    e_w = w["e_w"] * (0.5 if len(words(ev.core)) <= 2 else 1.0)  # a one-word answer embeds poorly
    return (1 - e_w) * ev.q_lex + e_w * clip((sim - 0.08) / 0.47)


def comprehensiveness(ev: Evidence, w: dict[str, float], rel: float) -> tuple[float, float, Notes]:
    """Enough substance for the request type, coverage of its terms, gated by relevance ``rel``."""
    need = NEED[ev.request_type] * w["need_mult"]
    # enough for the request type, and for requests that invite detail, room to grow beyond it
    adequacy = min(1.0, ev.n_eff / need) ** 0.6
    head = HEADROOM.get(ev.request_type, 0.0)
    adequacy *= 1 - head + head * ev.depth
    cov = ev.coverage if ev.request_type != "greeting" else None
    # a short factual answer need not repeat the question's words: coverage counts half there
    cov_w = w["cov_w"] * (0.5 if ev.request_type == "wh" else 1.0)
    # a substantive answer may cover the request in its own words: coverage weighs less as depth grows
    cov_w *= 1 - ev.depth
    base = adequacy if cov is None else cov_w * cov + (1 - cov_w) * adequacy
    p_inj = ev.p_inj
    # an answer to another question addresses none of this one: gate by relevance
    gate = min(1.0, 0.3 + 0.9 * rel)
    # a cut or a hedge costs what is missing: less once the answer has given much beyond the minimum
    spent = 1 - ev.depth / 2
    q = base * gate * (1 - w["a_t"] * ev.truncation * spent) * (1 - w["a_v"] * ev.vague * spent) * (1 - p_inj)
    q *= (1 - A_REFUSAL * ev.refusal) * (1 - A_COPY * ev.p_copy)
    notes = Notes()
    if ev.injections:
        notes.add(1.0, *injection_note(ev))
    if ev.vague_phrases:
        quoted = ", ".join(f'"{quote(v, 45)}"' for v in ev.vague_phrases[:2])
        notes.add(
            0.3 + ev.vague,
            f"It is a vague non-answer ({quoted}) that gives no specifics.",
            f"Generic filler such as {quoted} stands in for actual content.",
        )
    if ev.refusal >= 0.4:
        notes.add(
            0.2 + 0.6 * ev.refusal,
            "It declines to do what was asked, so the request goes unanswered.",
            "It is a refusal rather than an answer to the request.",
        )
    if ev.p_copy > 0:
        notes.add(
            0.2 + 0.4 * ev.p_copy,
            f"About {round(100 * ev.copy)}% of it is copied word for word from the text it was given.",
            f"Much of it ({round(100 * ev.copy)}%) repeats the provided text verbatim instead of doing the task.",
        )
    if ev.truncation >= 0.5:
        tail = quote(ev.trunc_tail, 40)
        notes.add(
            0.2 + ev.truncation,
            f'It is cut off ("…{tail}"), so the answer is incomplete.',
            f'The answer stops short at "{tail}" and never finishes.',
        )
    if cov is not None:
        cv, ms = join_terms(list(ev.covered)), join_terms(list(ev.missing))
        k, n = len(ev.covered), len(ev.req_stems)
        if k == n:
            some = (
                "The one key request term"
                if n == 1
                else "Both key request terms"
                if n == 2
                else f"All {n} key request terms"
            )
            notes.add(
                0.05,
                f"It takes up every key term of the request ({cv}).",
                f"{some} ({cv}) {'is' if n == 1 else 'are'} addressed.",
            )
        elif k == 0:
            notes.add(
                cov_w * (0.6 + 0.4 * (1 - adequacy)) + 0.1,
                f"It takes up none of the request's key terms ({ms}).",
                f"The request's key terms ({ms}) are not taken up.",
            )
        else:
            verb = "is" if len(ev.missing) == 1 else "are"
            notes.add(
                cov_w * (1 - cov) + 0.1,
                f"It covers {k} of {n} key request terms ({cv}) but not {ms}.",
                f"Of the request's key terms it takes up {cv}; {ms} {verb} left out.",
            )
    n_content = int(ev.n_eff)
    what = TYPE_WORDS[ev.request_type]
    if rel < 0.35:
        notes.add(
            0.5 - rel,
            "Since it does not answer what was asked, it leaves the request unaddressed.",
            "Whatever it says, it does not address the request itself.",
        )
    if n_content == 0:
        notes.add(
            0.6,
            f"It gives no substantive content at all for {what}.",
            f"There is nothing of substance in it for {what}.",
        )
    elif adequacy < 0.8:
        plural = "s" if n_content != 1 else ""
        notes.add(
            0.5 * (1 - adequacy) + 0.1,
            f"For {what} it offers only {n_content} substantive word{plural}, which is thin.",
            f"With {n_content} content word{plural} it is too brief for {what}.",
        )
    else:
        notes.add(
            0.03,
            f"Its {n_content} content words are enough for {what}.",
            f"The level of detail ({n_content} content words) suits {what}.",
        )
    strong = max(ev.truncation if ev.truncation >= 0.5 else 0.0, ev.vague, p_inj)
    if strong >= 0.5 or n_content == 0:
        strength = 1.0
    elif cov is not None and len(ev.req_stems) >= 2 and cov in (0.0, 1.0):
        strength = 0.75
    else:
        strength = 0.5
    return q, strength, notes


def on_topic(ev: Evidence, w: dict[str, float], sim: float | None) -> tuple[float, float, Notes]:
    """Relevance to the request: word-level evidence, blended with the embedding cosine ``sim`` when given."""
    if not ev.n_core:
        sim = None  # nothing of its own to compare (see relevance)
    e = None if sim is None else clip((sim - 0.08) / 0.47)
    q = relevance(ev, w, sim) * (1 - ev.p_inj)
    notes = Notes()
    if ev.injections:
        notes.add(1.0, *injection_note(ev))
    if sim is not None:
        verdict = (
            "closely related to"
            if sim >= 0.5
            else "related to"
            if sim >= 0.3
            else "only loosely related to"
            if sim >= 0.15
            else "unrelated to"
        )
        notes.add(
            0.6,
            f"Its meaning is {verdict} the request (embedding cosine {sim:.2f}).",
            f"Semantic similarity with the request (embedding cosine {sim:.2f}) puts it {verdict} what was asked.",
        )
    if ev.shared:
        terms = join_terms(list(ev.shared), 4)
        src = "the request and its context" if ev.history else "the request"
        notes.add(
            0.3 * ev.lex + 0.05,
            f"It picks up terms of {src} ({terms}); lexical similarity {ev.lex:.2f}.",
            f"Word overlap with {src} ({terms}) gives a lexical similarity of {ev.lex:.2f}.",
        )
    elif ev.n_core:
        notes.add(
            0.3,
            f"It shares no content words with the request (lexical similarity {ev.lex:.2f}).",
            f"Lexical similarity with the request is {ev.lex:.2f}: no shared content words.",
        )
    if ev.drift >= 0.3:
        terms = join_terms(list(ev.ungrounded), 4)
        notes.add(
            0.35 + ev.drift * 0.3,
            f"It brings in unrelated material ({terms}) that the user did not ask about.",
            f"Terms such as {terms} drift away from the request.",
        )
    if ev.vague >= 0.2 and not ev.n_core:
        notes.add(
            0.5,
            "It is a generic reply that nods at the request without engaging with it.",
            "It stays generic: it acknowledges the message but never gets to what was asked.",
        )
    elif not ev.core:
        notes.add(
            0.9,
            "Apart from boilerplate it says nothing, so it does not address the request at all.",
        )
    if ev.fit > 0:
        notes.add(
            0.2,
            f"In form it fits {TYPE_WORDS[ev.request_type]}: {ev.fit_reason}.",
            f"It has the right shape of reply: {ev.fit_reason}.",
        )
    if ev.person and not ev.shared:
        notes.add(
            0.12,
            "It keeps to the exchange, answering in the person the user addressed.",
        )
    if e is not None:
        agree = (e >= 0.5) == (ev.q_lex >= 0.5)
        strength = min(1.0, abs(e - 0.5) * 2) * 0.8 + (0.2 if agree else 0.0)
    elif ev.lex >= 0.5:
        strength = 0.8
    else:
        strength = 0.55 if ev.drift >= 0.5 or ev.vague >= 0.5 or ev.fit else 0.35
    return q, strength, notes
