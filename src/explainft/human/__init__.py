"""Human-rated sets read in their published formats: the registry of formats and :func:`load_human_set`.

A *format* reads the files of one downloaded folder into a :class:`~explainft.human.records.HumanSet`: a
rating set (responses with per-annotator values of named qualities on numeric scales) or a preference set
(pairs of responses to one prompt and the one a person preferred). Each format's module documents its policies:
what is skipped, dropped or changed and counted, and how ids, groups and roles are built.

=========================  ============  ====================================================================
format                     kind          source
=========================  ============  ====================================================================
``helpsteer``              ratings       NVIDIA HelpSteer JSON lines (five attributes 0-4)
``arena_human_preference`` preferences   LMSYS arena-human-preference-55k (``train.csv`` or JSON lines)
``chatbot_arena``          preferences   lmsys/chatbot_arena_conversations (parquet or JSON lines)
``hh_rlhf_pairs``          preferences   Anthropic HH-RLHF ``{"chosen", "rejected"}`` lines
``usr``                    ratings       USR ``tc_usr_data.json`` / ``pc_usr_data.json``
``fed``                    ratings       FED ``fed_data.json`` (turn-level items)
``gold``                   ratings       the user's own file (:mod:`explainft.human.gold`)
=========================  ============  ====================================================================

Every format takes the option ``files`` (globs relative to the raw folder). The folder's ``SOURCE.json``
manifest is never read; a folder with no matching file is a RecordError naming the folder and the globs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..datasets.base import LoadContext
from ..errors import ConfigError
from . import arena_preference, chatbot_arena, fed, gold, helpsteer, hh_pairs, usr
from .base import check_human_options
from .records import KINDS, Annotation, HumanSet, PreferencePair, RatedResponse, Scale

__all__ = [
    "FORMATS",
    "QUALITY_NAMES",
    "Annotation",
    "HumanFormat",
    "HumanSet",
    "PreferencePair",
    "RatedResponse",
    "Scale",
    "check_human_set",
    "load_human_set",
]

Reader = Callable[[Path, str, dict[str, Any], LoadContext], HumanSet]


@dataclass(frozen=True)
class HumanFormat:
    """One published format: its name, kind (``ratings`` | ``preferences``), options and reader."""

    name: str
    kind: str
    options: dict[str, tuple[Any, Any]]
    reader: Reader

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"format {self.name}: kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def option_keys(self) -> tuple[str, ...]:
        """The option names this format accepts."""
        return tuple(self.options)

    def check_options(self, name: str, options: Any) -> dict[str, Any]:
        """The options with defaults filled in; ConfigError names ``human.sets.<name>.options.<key>``."""
        return check_human_options(name, options, self.options)

    def load(self, raw_dir: Path, name: str, options: dict[str, Any] | None, ctx: LoadContext) -> HumanSet:
        """Check ``options`` and read the set ``name`` from ``raw_dir`` with ``ctx``'s error policy."""
        return self.reader(Path(raw_dir), name, self.check_options(name, options), ctx)


def _format(name: str, module: Any) -> HumanFormat:
    return HumanFormat(name=name, kind=module.KIND, options=module.OPTIONS, reader=module.load)


FORMATS: dict[str, HumanFormat] = {
    "helpsteer": _format("helpsteer", helpsteer),
    "arena_human_preference": _format("arena_human_preference", arena_preference),
    "chatbot_arena": _format("chatbot_arena", chatbot_arena),
    "hh_rlhf_pairs": _format("hh_rlhf_pairs", hh_pairs),
    "usr": _format("usr", usr),
    "fed": _format("fed", fed),
    "gold": _format("gold", gold),
}


# the qualities each published format defines (None: the user's own file names its own)
QUALITY_NAMES: dict[str, tuple[str, ...] | None] = {
    "helpsteer": helpsteer.ATTRIBUTES,
    "arena_human_preference": tuple(arena_preference.QUALITIES),
    "chatbot_arena": tuple(chatbot_arena.QUALITIES),
    "hh_rlhf_pairs": ("preference",),
    "usr": tuple(key for key, _ in usr.QUALITIES.values()),
    "fed": tuple(key for key, _ in fed.QUALITIES.values()),
    "gold": None,
}


def check_human_set(name: str, fmt: Any, options: Any, mapping: dict[str, str], map_key: str | None = None) -> None:
    """Before any download: the format exists, its options are valid and every mapped quality is one it defines
    (ConfigError naming ``human.sets.<name>.format``, ``.options.<key>`` or ``.map.<dimension>``; ``map_key``
    replaces ``human.sets.<name>.map`` where the map comes from elsewhere, e.g. ``--map``)."""
    spec = FORMATS.get(fmt) if isinstance(fmt, str) else None
    if spec is None:
        raise ConfigError(f"human.sets.{name}.format", f"unknown format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    spec.check_options(name, options)
    known = QUALITY_NAMES[fmt]
    for dim, quality in mapping.items():
        if known is not None and quality not in known:
            raise ConfigError(
                f"{map_key or f'human.sets.{name}.map'}.{dim}",
                f"{quality!r} is not a quality of format {fmt}; it has: {', '.join(known)}",
            )


def load_human_set(
    fmt: str, raw_dir: str | Path, name: str, options: dict[str, Any] | None = None, on_error: str = "raise"
) -> HumanSet:
    """Read the human set ``name`` in format ``fmt`` from the folder ``raw_dir``.

    ``on_error`` is ``raise`` (the first malformed record raises its RecordError) or ``skip`` (it is counted
    under ``skipped.<reason>`` in ``HumanSet.load``). An unknown format is a ConfigError naming
    ``human.sets.<name>.format``; a bad option one naming ``human.sets.<name>.options.<key>``.
    """
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise ConfigError(f"human.sets.{name}", "a set name must be a non-empty string without '/'")
    spec = FORMATS.get(fmt)
    if spec is None:
        raise ConfigError(f"human.sets.{name}.format", f"unknown format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    options = spec.check_options(name, options)
    ctx = LoadContext(dataset=name, on_error=on_error)
    return spec.reader(Path(raw_dir), name, options, ctx)
