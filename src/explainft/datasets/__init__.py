"""The dataset registry: every dataset name the pipeline knows, and its loader.

Modules are imported lazily so the demo pipeline does not pay for pyarrow.

Loader module contract (``src/explainft/datasets/<module>.py``):

* ``OPTIONS: dict[str, tuple[type | tuple | list, default]]`` -- the option
  schema for :func:`base.check_options` (a list means "one of these values").
  Options are documented choices (which side, which answer, merge or keep).
  Options the registry fixes by name (``DatasetSpec.fixed``) are not in
  ``OPTIONS`` but arrive in ``options`` all the same.
* ``RAW_FILES: list[str]`` -- glob patterns (relative to the raw folder, ``**``
  allowed) of the files it reads. The raw folder also holds the download
  stage's ``SOURCE.json`` manifest, which must never match.
* ``load(raw_dir: Path, options: dict, ctx: LoadContext) -> Iterator[Conversation]``
  -- a generator reading the files in their original published format::

      for rec, obj in ctx.jsonl(path):      # or ctx.text_lines(...) + ctx.record(path, lineno)
          with rec:                          # RecordError inside: gets file+line, raised or counted
              rec.add(Conversation(...))     # validates itself
          yield from rec.take()

  It calls ``ctx.note_file(path, raw_dir)`` per file read. Malformed input is a
  ``RecordError`` naming the field (``base.require``), never a KeyError or a
  silent drop; documented edge-case policies are counted with ``ctx.count``
  (record changed) or ``ctx.drop`` (record removed).
* Ids are unique and stable: ``f"{ctx.dataset}/<source id>"``. Provenance goes
  in ``meta["source"] = {"file": <path relative to raw_dir>, "line": n}`` (or
  ``"row": i`` for parquet). Meta stays JSON-serialisable (no numpy, no NaN).
* Related conversations share a ``group`` (``Conversation.group``): twins,
  the two sides of one prompt, the items of one story. The split keeps a
  group wholly in train, validation or test across every dataset. Use
  ``base.prompt_group(turns)`` when the relation is "the same user turns";
  a loader whose records are unrelated uses the conversation id and says so.
* The module docstring documents every option and policy, and the group.

Tests: ``tests/test_<module>.py`` with fixtures in ``tests/fixtures/<module>/``
in the original formats; ``conftest.load`` runs a loader, ``shared_samples``
points at the real excerpts in ``../shared/samples``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    module: str
    description: str
    fixed: dict[str, Any] = field(default_factory=dict)  # options implied by the name

    def loader(self) -> ModuleType:
        return importlib.import_module(f"{__name__}.{self.module}")


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("chatterbot", "chatterbot", "English dialogues of the chatterbot-corpus package (embedded demo)"),
        DatasetSpec(
            "chatterbot_perturbed",
            "chatterbot",
            "the chatterbot dialogues with seeded perturbations of the response (embedded demo)",
            fixed={"perturbed": True},
        ),
        DatasetSpec("chatbot_arena", "arena", "lmsys/chatbot_arena_conversations (both sides of each battle)"),
        DatasetSpec("hh_rlhf_chosen", "hh_rlhf", "Anthropic/hh-rlhf, the chosen transcripts", fixed={"side": "chosen"}),
        DatasetSpec(
            "hh_rlhf_rejected", "hh_rlhf", "Anthropic/hh-rlhf, the rejected transcripts", fixed={"side": "rejected"}
        ),
        DatasetSpec("amazonqa", "amazonqa", "AmazonQA *-qar.jsonl (Gupta et al. 2019), review snippets as context"),
        DatasetSpec("coqa", "coqa", "CoQA (Reddy et al. 2019), original JSON or Hub parquet, story as context"),
        DatasetSpec("cornell_movie_dialogs", "cornell", "Cornell Movie-Dialogs Corpus, the original text files"),
    ]
}


def get(name: str) -> DatasetSpec:
    """The spec for ``name``; an unknown name is an error listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            "data.datasets", f"unknown dataset {name!r}; known datasets: {', '.join(sorted(REGISTRY))}"
        ) from None
