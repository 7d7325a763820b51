"""DVC stage `prepare@<dataset>`: raw files -> a seeded sample of Conversation records + metrics."""

from __future__ import annotations

from pathlib import Path

import click

from explainft.cli_util import run_stage


@click.command()
@click.argument("dataset")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(dataset: str, params_path: str) -> None:
    def work() -> None:
        from explainft.config import data_config, load_params
        from explainft.datasets.prepare import prepare

        cfg = data_config(load_params(params_path), deep=False)
        m = prepare(
            dataset,
            Path(f"data/raw/{dataset}"),
            Path(f"data/prepared/{dataset}.jsonl"),
            Path(f"metrics/prepare/{dataset}.json"),
            per_dataset=cfg.per_dataset,
            seed=cfg.seed,
            options=cfg.source(dataset)["options"],
            on_error=cfg.on_error,
        )
        click.echo(
            f"prepare@{dataset}: {m['sampled']} of {m['conversations']} conversations "
            f"({m['source_records']} source records, {m['skipped_total']} skipped, {m['dropped_total']} dropped)"
        )
        if m["skipped_total"]:
            click.echo(f"prepare@{dataset}: skipped by reason {m['skipped']} (data.on_error: skip)")

    run_stage(f"prepare@{dataset}", work)


if __name__ == "__main__":
    main()
