"""DVC stage `golden`: teacher prompts and merge methods against a human-rated golden set (paper Table 2)."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import golden

        result = golden.run(load_params(params_path))
        click.echo(
            "golden: "
            + (
                "not configured (golden.path: null)"
                if not result.get("configured", True)
                else "metrics/golden.json, reports/golden.md"
            )
        )

    run_stage("golden", work)


if __name__ == "__main__":
    main()
