"""DVC stage `prepare@<dataset>`: raw files -> a seeded sample of Conversation records + metrics."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.argument("dataset")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(dataset: str, params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import prepare

        m = prepare.run(load_params(params_path), dataset)
        click.echo(
            f"prepare@{dataset}: {m['sampled']} of {m['conversations']} conversations "
            f"({m['source_records']} source records, {m['skipped_total']} skipped, {m['dropped_total']} dropped)"
        )
        if m["skipped_total"]:
            click.echo(f"prepare@{dataset}: skipped by reason {m['skipped']} (data.on_error: skip)")

    run_stage(f"prepare@{dataset}", work)


if __name__ == "__main__":
    main()
