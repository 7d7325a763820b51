"""DVC stage `human_eval` (one per human-rated set): every rater against the people's judgements.

See explainft.stages.human_eval.
"""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.argument("name")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(name: str, params_path: str) -> None:
    def work() -> None:
        from explainft.config import load_params
        from explainft.stages import human_eval

        m = human_eval.run(load_params(params_path), name)
        click.echo(f"human_eval {name}: {m['items']} items, {len(m['raters'])} raters -> metrics/human/{name}.json")

    run_stage("human_eval", work)


if __name__ == "__main__":
    main()
