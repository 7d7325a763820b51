"""DVC stage `analyse`: weight differences and the logit lens over the trained grid (explainft.stages.analyse)."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(params_path: str) -> None:
    def work() -> None:
        from pathlib import Path

        from explainft.config import load_params
        from explainft.stages import analyse
        from explainft.timings import read_timings

        m = analyse.run(load_params(params_path))
        cost = read_timings(Path("."), "analysis").get("lens_cost_vs_scoring")
        click.echo(
            f"analyse: {m['pairs']} pairs (explanation vs score-only); logit lens costs "
            f"{cost}x plain scoring (timings/analysis.json) -> plots/analysis, metrics/analysis.json"
        )

    run_stage("analyse", work)


if __name__ == "__main__":
    main()
