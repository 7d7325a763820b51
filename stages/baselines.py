"""DVC stage `baselines` (one per dimension): the untuned student and the label prior on every test set.

See explainft.evaluation.run_baselines.
"""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.argument("dimension")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(dimension: str, params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import baselines

        m = baselines.run(load_params(params_path), dimension)
        for name in ("untuned", "prior"):
            cells = ", ".join(f"{t} {r['mse']:.4f}" for t, r in m[name].items())
            click.echo(f"baselines {dimension} {name}: test MSE {cells}")

    run_stage("baselines", work)


if __name__ == "__main__":
    main()
