"""DVC stage `analyse`: weight differences and the logit lens over the trained grid (explainft.analyses)."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(params_path: str) -> None:
    def work() -> None:
        from explainft.analyses import run_analyse
        from explainft.config import load_params

        m = run_analyse(load_params(params_path))
        click.echo(f"analyse: {m['pairs']} pairs (explanation vs score-only); logit lens costs "
                   f"{m['lens_cost_vs_scoring']}x plain scoring -> plots/analysis, metrics/analysis.json")

    run_stage("analyse", work)


if __name__ == "__main__":
    main()
