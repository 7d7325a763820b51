"""DVC stage `student`: build the student named by train.student into models/student (explainft.stages.student)."""

from __future__ import annotations

import click

from explainft.cli_util import run_stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(params_path: str) -> None:
    def work() -> None:
        from pathlib import Path

        from explainft.config import load_params
        from explainft.stages import student
        from explainft.timings import read_timings

        m = student.run(load_params(params_path))
        pre = m.get("pretrain")
        seconds = read_timings(Path("."), "student").get("pretrain", {}).get("seconds")
        took = f" in {seconds:.0f} s" if seconds is not None else ""
        extra = (
            (f", pretrained {pre['steps']} steps{took}, loss {pre['loss_start']:.2f} -> {pre['loss_end']:.2f}")
            if pre
            else ""
        )
        click.echo(f"student: {m['student']} ready in models/student{extra}")

    run_stage("student", work)


if __name__ == "__main__":
    main()
