"""`dvc plots show|diff` readable with no network: every Vega-Lite plot rendered to PNG.

DVC renders plots as an HTML page that loads the Vega libraries from a CDN, so
on an offline machine the page stays blank. :func:`render` asks DVC for the
same plots as JSON (``dvc plots diff --json``: the Vega-Lite specs with the data
of every revision inlined, exactly what the HTML page would draw) and renders
each one to PNG with ``vl-convert`` (a self-contained Vega engine, no browser, no
network). Image plots (the PNGs the stages write) are copied as they are for
each revision. An ``index.md`` lists the files.

``explainft plots [REV ...] [--targets PATH ...] -o DIR`` is the command: no
revision is ``dvc plots show`` (the workspace); one or more is ``dvc plots diff``
(the revisions against each other: branches, commits, experiment names).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import ExplainftError


class PlotsError(ExplainftError, RuntimeError):
    """`dvc plots` failed or printed no JSON, or a plot spec could not be rendered to PNG."""


def _dvc() -> str:
    exe = Path(sys.executable).with_name("dvc")
    return str(exe) if exe.is_file() else "dvc"


def plots_json(revs: Sequence[str], targets: Sequence[str], cwd: Path, out_dir: Path) -> dict[str, Any]:
    """DVC's plots as JSON: ``dvc plots show --json`` (no revs) or ``dvc plots diff REVS --json``; DVC writes the
    image plots of each revision into ``out_dir`` itself."""
    cmd = [_dvc(), "plots", "diff" if revs else "show", *revs, "--json", "-o", str(Path(out_dir).resolve())]
    if targets:  # `plots show` takes them as arguments, `plots diff` as --targets
        cmd += [*targets] if not revs else ["--targets", *targets]
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise PlotsError(f"`{' '.join(cmd[1:])}` failed in {cwd}: {(p.stderr or p.stdout).strip()}")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        raise PlotsError(f"`{' '.join(cmd[1:])}` did not print JSON: {p.stdout[:200]!r}") from None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "plot"


def render(data: dict[str, Any], out_dir: Path, *, scale: float = 1.5, root: Path = Path(".")) -> list[Path]:
    """Write one PNG per plot of ``data`` (``dvc plots ... --json`` output) into ``out_dir``; returns the files.

    Errors DVC reports for a plot (a missing file in one revision) are listed in ``index.md``, not hidden.
    """
    import vl_convert as vlc

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    lines = ["# Plots", ""]
    for name, items in sorted((data.get("data") or {}).items()):
        for i, item in enumerate(items):
            revs = item.get("revisions") or []
            suffix = f"_{i}" if len(items) > 1 else ""
            if item.get("type") == "vega":
                path = out_dir / f"{_slug(name)}{suffix}.png"
                try:
                    path.write_bytes(vlc.vegalite_to_png(item["content"], scale=scale))
                except Exception as e:  # vl-convert raises ValueError for a spec it cannot render
                    raise PlotsError(f"plot {name!r} could not be rendered: {e}") from None
            elif item.get("type") == "image" and item.get("url"):
                src = Path(item["url"])
                src = src if src.is_absolute() else root / src
                if not src.is_file():
                    lines.append(f"* {name} ({', '.join(revs)}): image not found at {item['url']}")
                    continue
                path = out_dir / src.name
                if src.resolve() != path.resolve():
                    shutil.copyfile(src, path)
            else:
                continue
            written.append(path)
            lines.append(f"* [{name}]({path.name}) ({', '.join(revs)})")
    for err in data.get("errors") or []:
        lines.append(f"* error in {err.get('rev')}: {err.get('name')}: {err.get('type')} {err.get('msg', '')}".rstrip())
    (out_dir / "index.md").write_text("\n".join(lines) + "\n")
    return written
