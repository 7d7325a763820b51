"""Error types shared by every stage.

Every error says what was wrong and where: a file and line, a record id, a
field, or a parameter key. Stages let these propagate; the Click entry points
print them as one line and exit non-zero.
"""

from __future__ import annotations

from pathlib import Path


class ExplainftError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(ExplainftError):
    """A parameter is missing, unknown, or of the wrong type or value.

    ``key`` is the dotted path in params.yaml (``sources.coqa.options.items``).
    """

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"params: {key}: {message}")


class RecordError(ExplainftError):
    """One source record (a line, a row, a story) could not be turned into a record.

    ``reason`` is a short stable slug (``bad_json``, ``missing_field``,
    ``wrong_type``, ``bad_encoding``, ``empty_conversation``,
    ``last_turn_not_response`` …) used as the key of skip counts.
    ``file``/``line`` are filled in by the reader that knows them.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        field: str | None = None,
        file: str | Path | None = None,
        line: int | None = None,
        record: str | None = None,
    ):
        self.reason = reason
        self.message = message
        self.field = field
        self.file = str(file) if file is not None else None
        self.line = line
        self.record = record
        super().__init__(self._render())

    def at(self, file: str | Path | None = None, line: int | None = None) -> "RecordError":
        """Fill in the location if the raiser did not know it; returns self."""
        if self.file is None and file is not None:
            self.file = str(file)
        if self.line is None and line is not None:
            self.line = line
        self.args = (self._render(),)
        return self

    def _render(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.record:
            parts.append(f"record {self.record}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return f"{': '.join(parts)}: {self.message} [{self.reason}]"

    def __str__(self) -> str:  # args may be stale after at(); always render fresh
        return self._render()


class DownloadError(ExplainftError):
    """A source could not be fetched: names the URL or repository and the cause."""
