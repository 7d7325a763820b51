"""The ``explainft`` command: check a profile, list the datasets, use the profiles."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from .cli_util import run_stage


@click.group()
@click.version_option(package_name="explainft")
def main() -> None:
    """explainft: explanation-enhanced fine-tuning of conversation raters."""


@main.command()
@click.argument("profile", default="params.yaml", type=click.Path(dir_okay=False))
def check(profile: str) -> None:
    """Check a profile (default params.yaml) before running anything: keys, types, datasets, options."""

    def work() -> None:
        from .config import check_profile, load_params

        summary = check_profile(load_params(profile))
        click.echo(f"{profile}: ok (" + "; ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in summary.items()) + ")")

    run_stage("check", work)


@main.command("datasets")
def list_datasets() -> None:
    """List the dataset names the loaders know."""
    from .datasets import REGISTRY

    width = max(map(len, REGISTRY))
    for name, spec in sorted(REGISTRY.items()):
        click.echo(f"{name:<{width}}  {spec.description}")


@main.command()
@click.argument("name")
@click.option("--root", default=".", type=click.Path(file_okay=False), help="project root")
def use(name: str, root: str) -> None:
    """Make configs/NAME.yaml the active profile (copies it over params.yaml after checking it).

    `dvc repro` then runs that profile, and dvc.lock records its values (its
    `profile` key names it). `explainft use default` restores the embedded default.
    """

    def work() -> None:
        from .config import check_profile, load_params

        base = Path(root)
        src = base / "configs" / f"{name}.yaml"
        if not src.is_file():
            choices = sorted(p.stem for p in (base / "configs").glob("*.yaml"))
            raise click.ClickException(f"no profile {src}; available: {', '.join(choices)}")
        check_profile(load_params(src))
        shutil.copyfile(src, base / "params.yaml")
        click.echo(f"params.yaml <- {src}; run `dvc repro`")

    run_stage("use", work)
