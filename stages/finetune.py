"""DVC stage `finetune` (a matrix over train.sets x dimensions x variants x seeds): one fine-tune.

With ``train.num_processes`` > 1 (or ``train.accelerate_config`` set) the script relaunches itself under
``accelerate launch`` (DDP across the processes; FSDP or DeepSpeed through the accelerate config file), so
dvc.yaml stays the same on a laptop and on a multi-GPU machine. See explainft.stages.finetune.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

from explainft.cli_util import run_stage

_LAUNCHED = "EXPLAINFT_LAUNCHED"


def launch_command(script: str, args: list[str], num_processes: int, config_file: str | None) -> list[str]:
    """The ``accelerate launch`` command line that reruns this script in ``num_processes`` processes."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:
        cmd += ["--config_file", config_file]
    cmd += ["--num_processes", str(num_processes)]
    if num_processes > 1 and not config_file:
        # DDP through torchrun: one process per GPU, or CPU processes over gloo on a machine without CUDA
        # (accelerate's --cpu flag would start a single process; tests run the CPU case)
        cmd += ["--multi_gpu"]
    return cmd + [script, *args]


@click.command()
@click.argument("train_set")
@click.argument("dimension")
@click.argument("variant")
@click.argument("seed", type=int)
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
def main(train_set: str, dimension: str, variant: str, seed: int, params_path: str) -> None:
    def work() -> None:
        from pathlib import Path

        from explainft.config import finetune_config, load_params
        from explainft.layout import cell_path
        from explainft.stages import finetune
        from explainft.timings import read_timings

        params = load_params(params_path)
        fc = finetune_config(params)
        if (fc.num_processes > 1 or fc.accelerate_config) and not os.environ.get(_LAUNCHED):
            cmd = launch_command(
                __file__,
                [train_set, dimension, variant, str(seed), "--params", params_path],
                fc.num_processes,
                fc.accelerate_config,
            )
            click.echo("finetune: " + " ".join(cmd[1:]))
            sys.exit(subprocess.call(cmd, env={**os.environ, _LAUNCHED: "1"}))
        m = finetune.run(params, train_set, dimension, variant, seed)
        if os.environ.get("RANK", "0") == "0":
            cell = cell_path(train_set, dimension, variant, seed)
            seconds = read_timings(Path("."), f"train/{cell}").get("train_seconds")
            took = f" in {seconds:.1f} s" if seconds is not None else ""
            click.echo(
                f"finetune {cell}: {m['steps']} steps{took}, "
                f"validation loss {m['validation_loss_initial']:.4f} -> {m['validation_loss_final']:.4f}, "
                f"validation MSE {m['validation_mse']:.4f} (prior {m['validation_prior_mse']:.4f}), "
                f"padding {m['padding_share']:.1%}"
            )

    run_stage("finetune", work)


if __name__ == "__main__":
    main()
