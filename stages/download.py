"""DVC stage `download@<dataset>`: fetch a dataset's raw files, as published, into data/raw/<dataset>/."""

from __future__ import annotations

from pathlib import Path

import click

from explainft.cli_util import run_stage


@click.command()
@click.argument("dataset")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="default: data/raw/<dataset>")
def main(dataset: str, params_path: str, out_dir: str | None) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import download

        manifest = download.run(load_params(params_path), dataset, Path(out_dir) if out_dir else None)
        click.echo(f"download@{dataset}: {len(manifest['files'])} files from {manifest['from']}")

    run_stage(f"download@{dataset}", work)


if __name__ == "__main__":
    main()
