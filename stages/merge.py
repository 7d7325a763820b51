"""DVC stage `merge@<dataset>`: see explainft.stages.merge."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.argument("dataset")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(dataset: str, params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import merge

        m = merge.run(load_params(params_path), dataset)
        dropped = sum(m["dropped_min_valid"].values())
        fallbacks = sum(n for per_dim in m["llm_fallbacks"].values() for n in per_dim.values())
        click.echo(
            f"merge@{dataset}: {m['n_items']} items ({m['score_method']} scores, {m['explanation_method']} "
            f"explanations); {dropped} dropped below min_valid, {fallbacks} llm fallbacks"
        )

    run_stage(f"merge@{dataset}", work)


if __name__ == "__main__":
    main()
