"""DVC stage `explanation_stats`: see explainft.stages.explanation_stats."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import explanation_stats

        explanation_stats.run(load_params(params_path))
        click.echo("explanation_stats: plots/explanations/, metrics/explanations.json")

    run_stage("explanation_stats", work)


if __name__ == "__main__":
    main()
