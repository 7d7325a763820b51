"""What the student reads and writes: its prompt and its training target.

Prompt = the dimension's definition and the 1–5 rubric + the conversation,
fenced as in the teacher prompts, ending in ``Score:``. Target = the score
first, then the explanation, then end of text: ``" 4\\n<explanation>"``
(score only for the ``none`` variant). The fine-tuning stage masks the prompt
and, for evaluation, supervises the score token alone.
"""

from __future__ import annotations

from .annotate.prompts import DEFINITIONS, DIMENSION_NAMES, RUBRICS, fence_nonce, render_conversation
from .records import Example

STUDENT_SCALE = 5


def student_prompt(example: Example) -> str:
    """The student's prompt for one example (deterministic: it is part of what DVC hashes downstream)."""
    dim = example.dimension
    body = render_conversation(example.conversation())
    nonce = fence_nonce(body)
    rubric = "\n".join(RUBRICS[dim][STUDENT_SCALE])
    return (
        f"Rate the {DIMENSION_NAMES[dim]} of the last assistant response on a scale of 1 to {STUDENT_SCALE}.\n"
        f"{DEFINITIONS[dim]}\n{rubric}\n\n"
        f"<<<CONVERSATION {nonce}>>>\n{body}\n<<<END CONVERSATION {nonce}>>>\n\nScore:"
    )


def student_target(example: Example) -> str:
    """``" <label>"`` then, when the example carries an explanation, a newline and the explanation."""
    if example.variant is None:
        raise ValueError(f"example {example.id!r} has no variant: targets are built from variant files")
    text = f" {example.label}"
    if example.explanation:
        text += f"\n{example.explanation}"
    return text
