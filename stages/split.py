"""DVC stage `split`: see explainft.stages.split."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import split

        m = split.run(load_params(params_path))
        click.echo(f"split: {len(m['sets'])} cells written")

    run_stage("split", work)


if __name__ == "__main__":
    main()
