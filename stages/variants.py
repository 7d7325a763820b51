"""DVC stage `variants`: see explainft.stages.variants."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import variants

        m = variants.run(load_params(params_path))
        click.echo(f"variants: {len(m['cells'])} cells written")

    run_stage("variants", work)


if __name__ == "__main__":
    main()
