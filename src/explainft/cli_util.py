"""Glue for stage scripts and the CLI: turn project errors into one clear line and exit 1."""

from __future__ import annotations

from typing import Callable

import click

from .errors import ExplainftError


def run_stage(stage: str, work: Callable[[], None]) -> None:
    """Run ``work``; a project error becomes ``<stage>: <message>`` on stderr and exit status 1."""
    try:
        work()
    except ExplainftError as e:
        raise click.ClickException(f"{stage}: {e}") from e
