"""DVC stage `report`: reports/REPORT.md, its tables and figures, metrics/report.json (explainft.report)."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import report

        m = report.run(load_params(params_path))
        click.echo(
            f"report: explanations win in {m['explanations_win']} of {m['cells']} cells "
            f"(paper: {m['paper_explanations_win']} of {m['paper_cells']}); "
            f"{m['beat_both_baselines']} of {m['models']} models beat both baselines -> reports/REPORT.md"
        )

    run_stage("report", work)


if __name__ == "__main__":
    main()
