"""DVC stage `human_download` (one per human-rated set): its files, as published, into data/raw/human/<name>."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.argument("name")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(name: str, params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import human_download

        m = human_download.run(load_params(params_path), name)
        click.echo(f"human_download {name}: {len(m['files'])} files into data/raw/human/{name}")

    run_stage("human_download", work)


if __name__ == "__main__":
    main()
