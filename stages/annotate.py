"""DVC stage `annotate@<dataset>`: see explainft.stages.annotate."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.argument("dataset")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(dataset: str, params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import annotate

        m = annotate.run(load_params(params_path), dataset)
        click.echo(f"annotate@{dataset}: " + ", ".join(f"{k}={m[k]}" for k in SUMMARY if k in m))

    run_stage(f"annotate@{dataset}", work)


SUMMARY = ("items", "ratings", "ok", "unparsable", "failed", "requests_sent", "cache_hits")

if __name__ == "__main__":
    main()
