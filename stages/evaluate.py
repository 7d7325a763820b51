"""DVC stage `evaluate` (a matrix like finetune's): one fine-tuned model on every test set of its dimension.

See explainft.stages.evaluate.
"""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.argument("train_set")
@click.argument("dimension")
@click.argument("variant")
@click.argument("seed", type=int)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(train_set: str, dimension: str, variant: str, seed: int, params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import evaluate

        m = evaluate.run(load_params(params_path), train_set, dimension, variant, seed)
        cells = ", ".join(f"{t} {r['mse']:.4f}" for t, r in m["test"].items())
        click.echo(f"evaluate {m['model']}: test MSE {cells}")

    run_stage("evaluate", work)


if __name__ == "__main__":
    main()
