"""The ``explainft`` command: check a profile, list the datasets, use the profiles, rate conversations, measure a
rater's agreement with people."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from . import artifacts, codedeps, plots
from .cli_util import run_stage
from .config import load_params
from .config.train import POSITIONS
from .datasets import REGISTRY
from .fsutil import write_json
from .human import FORMATS as HUMAN_FORMATS
from .records import DIMENSIONS, Conversation, read_jsonl, write_jsonl
from .scoring import ScoringError, example_for, load_rater, predictions, score_examples, trained_position
from .selection import parse_grid
from .stages import agree as agree_body
from .stages.check import check_profile
from .stages.select import select


@click.group()
@click.version_option(package_name="explainft")
def main() -> None:
    """explainft: explanation-enhanced fine-tuning of conversation raters."""


@main.command()
@click.argument("profile", default="params.yaml", type=click.Path(dir_okay=False))
def check(profile: str) -> None:
    """Check a profile (default params.yaml) before running anything: keys, types, datasets, options."""

    def work() -> None:
        summary = check_profile(load_params(profile))
        click.echo(
            f"{profile}: ok ("
            + "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in summary.items())
            + ")"
        )

    run_stage("check", work)


@main.command("datasets")
def list_datasets() -> None:
    """List the dataset names the loaders know."""
    width = max(map(len, REGISTRY))
    for name, spec in sorted(REGISTRY.items()):
        click.echo(f"{name:<{width}}  {spec.description}")


@main.command()
@click.argument("name")
@click.option("--root", default=".", type=click.Path(file_okay=False), help="project root")
def use(name: str, root: str) -> None:
    """Make configs/NAME.yaml the active profile (copies it over params.yaml after checking it).

    `dvc repro` then runs that profile, and dvc.lock records its values (its
    `profile` key names it). `explainft use default` restores the embedded default.
    """

    def work() -> None:
        base = Path(root)
        src = base / "configs" / f"{name}.yaml"
        if not src.is_file():
            choices = sorted(p.stem for p in (base / "configs").glob("*.yaml"))
            raise click.ClickException(f"no profile {src}; available: {', '.join(choices)}")
        params = check_profile_params(src)
        shutil.copyfile(src, base / "params.yaml")
        if (base / "dvc.yaml").is_file():  # a project root: its generated models/dvc.yaml follows the grid
            click.echo(f"params.yaml <- {src}; {write_artifacts(base, params)}; run `dvc repro`")
        else:
            click.echo(f"params.yaml <- {src}; run `dvc repro`")

    run_stage("use", work)


def check_profile_params(path: Path) -> dict:
    params = load_params(path)
    check_profile(params)
    return params


def write_artifacts(root: Path, params: dict) -> str:
    """Write the generated models/dvc.yaml under ``root`` (never the hand-written dvc.yaml); says what it wrote."""
    return f"{artifacts.ARTIFACTS_FILE} artifacts: {artifacts.write(root, params)} models"


@main.command("artifacts")
@click.option("--root", default=".", type=click.Path(file_okay=False), help="project root")
@click.option("--check", "check_only", is_flag=True, help="only check that models/dvc.yaml matches params.yaml")
def artifacts_cmd(root: str, check_only: bool) -> None:
    """Write (or --check) models/dvc.yaml, the generated DVC file declaring one model artifact per fine-tune of
    params.yaml's grid. The hand-written dvc.yaml is never written."""

    def work() -> None:
        base = Path(root)
        params = check_profile_params(base / "params.yaml")
        if check_only:
            if (problem := artifacts.drift(base, params)) is not None:
                raise click.ClickException(problem)
            click.echo(f"{artifacts.ARTIFACTS_FILE} artifacts: up to date")
            return
        click.echo(write_artifacts(base, params))

    run_stage("artifacts", work)


@main.command("deps")
@click.argument("stages", nargs=-1)
@click.option("--dvc-yaml", "dvc_yaml", default="dvc.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--check", "check_only", is_flag=True, help="exit 1 listing the stages whose code deps differ")
@click.option("--write", "write_deps", is_flag=True, help="rewrite the stages' code deps in dvc.yaml in place")
def deps_cmd(stages: tuple[str, ...], dvc_yaml: str, check_only: bool, write_deps: bool) -> None:
    """The project files each stage (default: every stage) runs, from the import graph, as YAML per stage.

    A code dep is a .py file or a folder under src/explainft or stages; --check compares them with
    dvc.yaml's, --write puts the computed files there (comments and other deps are kept).
    """

    def work() -> None:
        if check_only and write_deps:
            raise click.UsageError("--check and --write exclude each other")
        if write_deps:
            changed = codedeps.write(dvc_yaml, stages)
            click.echo(f"{dvc_yaml}: code deps written; changed: {', '.join(changed) or 'none'}")
        elif check_only:
            drifts = codedeps.compare(dvc_yaml, stages)
            bad = [d for d in drifts if not d.ok]
            if bad:
                raise codedeps.CodeDepsError(
                    f"{dvc_yaml}: the code deps of {len(bad)} of {len(drifts)} stages differ from "
                    f"the import graph (run `explainft deps --write`):\n" + "\n".join(d.describe() for d in bad)
                )
            click.echo(f"{dvc_yaml}: the code deps of all {len(drifts)} stages are complete")
        else:
            click.echo(codedeps.render(codedeps.stage_code(dvc_yaml, stages)), nl=False)

    run_stage("deps", work)


@main.command("prune-lock")
@click.option("--root", default=".", type=click.Path(file_okay=False), help="project root")
def prune_lock_cmd(root: str) -> None:
    """Remove dvc.lock's entries for stages that dvc.yaml + params.yaml no longer define (renamed or dropped).

    The defined names (foreach and matrix items expanded) come from DVC; every other entry stays byte for byte.
    """

    def work() -> None:
        removed = codedeps.prune_lock(root)
        click.echo(f"dvc.lock: removed {len(removed)} orphan entries" + (f": {', '.join(removed)}" if removed else ""))

    run_stage("prune-lock", work)


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(dir_okay=False))
@click.argument("output_path", metavar="OUTPUT.jsonl", type=click.Path(dir_okay=False))
@click.option("--dimension", required=True, type=click.Choice(DIMENSIONS), help="the dimension to rate")
@click.option("--base", default=None, help="base model of an adapter (default: the adapter's own, from the cwd)")
@click.option(
    "--max-length",
    default=512,
    show_default=True,
    type=click.IntRange(min=1),
    help="the fine-tune's max_length (the same truncation as training)",
)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--model-name", default=None, help="the predictions' model field (default: MODEL_DIR as given)")
@click.option(
    "--position",
    default=None,
    type=click.Choice(POSITIONS),
    help="the layout the rater was trained with (default: the one its metrics.json records, else after)",
)
def rate(
    model_dir: str,
    input_path: str,
    output_path: str,
    dimension: str,
    base: str | None,
    max_length: int,
    batch_size: int,
    model_name: str | None,
    position: str | None,
) -> None:
    """Rate the last assistant turn of each conversation in INPUT.jsonl with a rater in MODEL_DIR.

    MODEL_DIR is a fine-tune's model/ folder (a peft adapter or a full model)
    or an untuned student folder. Writes one Prediction per conversation to
    OUTPUT.jsonl (test_set = the input's file name stem, target null) with the
    expected score and the five score probabilities.
    """

    def work() -> None:

        test_set = Path(input_path).stem
        if not Path(input_path).is_file():
            raise click.ClickException(f"rate: {input_path}: no such file")
        examples = [example_for(c, dimension) for c in read_jsonl(input_path, Conversation)]
        if not examples:  # before loading the model
            raise ScoringError(f"test set {test_set!r} is empty: {input_path} holds no conversations")
        layout = position or trained_position(Path(model_dir))
        model, tok = load_rater(model_dir, base=base)
        scored = score_examples(
            model,
            tok,
            examples,
            max_length=max_length,
            batch_size=batch_size,
            position=layout,
            test_set=test_set,
            progress=True,
        )
        name = model_name or Path(model_dir).as_posix()
        n = write_jsonl(output_path, predictions(examples, scored, name, test_set, with_target=False))
        mean = sum(s.expected for s in scored) / n
        mass = sum(s.mass for s in scored) / n
        counts = " ".join(f"{k}:{sum(s.argmax == k for s in scored)}" for k in range(1, 6))
        truncated = sum(s.truncated for s in scored)
        click.echo(
            f"rate: {n} conversations of {test_set} on {dimension} by {name} -> {output_path} "
            f"(mean expected {mean:.4f}; argmax {counts}; mean score-token mass {mass:.4f}; "
            f"truncated {truncated})"
        )

    run_stage("rate", work)


@main.command("agree")
@click.argument("path", type=click.Path(exists=True))
@click.option("--format", "fmt", required=True, type=click.Choice(sorted(HUMAN_FORMATS)), help="the file's format")
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="DIMENSION=QUALITY",
    help="which human quality stands for a dimension (repeatable; default: a preference set's preference for "
    "every dimension, a rating set's qualities named like a dimension)",
)
@click.option("--rater", "raters", multiple=True, type=click.Path(file_okay=False), help="a rater folder (repeatable)")
@click.option("--base", default=None, help="base model of an adapter rater (default: the adapter's own)")
@click.option(
    "--teachers",
    "params_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="also rate with the teachers and merged ensemble of this profile (e.g. params.yaml)",
)
@click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True)
@click.option("--max-length", default=640, show_default=True, type=click.IntRange(min=16))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=0))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="write every number here")
def agree_cmd(
    path: str,
    fmt: str,
    maps: tuple[str, ...],
    raters: tuple[str, ...],
    base: str | None,
    params_path: str | None,
    on_error: str,
    max_length: int,
    batch_size: int,
    bootstrap: int,
    seed: int,
    json_path: str | None,
) -> None:
    """Measure raters against the people's judgements in PATH (a file or a folder in --format), without the pipeline.

    Each --rater (a fine-tune's model/ folder or a student) rates every response on each mapped dimension;
    --teachers adds the profile's teachers and ensemble. Prints Spearman, Kendall tau-b, Pearson, quadratic
    weighted kappa and MAE per rater and dimension (pairwise accuracy for a preference set), each with a 95%
    group-bootstrap interval, beside three one-feature baselines (length, distinct-word ratio, word overlap).
    """

    def work() -> None:
        params = load_params(params_path) if params_path else None
        dims = tuple(params["annotate"]["dimensions"]) if params else DIMENSIONS
        if not raters and params is None:
            raise click.UsageError("name a rater (--rater MODEL_DIR) or a profile's teachers (--teachers params.yaml)")
        result = agree_body.run(
            path,
            fmt,
            mapping=agree_body.parse_map(maps, fmt, dims),
            raters=raters,
            base=base,
            params=params,
            on_error=on_error,
            max_length=max_length,
            batch_size=batch_size,
            bootstrap=bootstrap,
            seed=seed,
        )
        click.echo(f"agree: {result['items']} items of {path} ({fmt}, {result['kind']})")
        click.echo(agree_body.table(result))
        if json_path:
            write_json(json_path, result)
            click.echo(f"agree: every number in {json_path}")

    run_stage("agree", work)


@main.command("plots")
@click.argument("revs", nargs=-1)
@click.option("--targets", multiple=True, help="plot files or dvc.yaml plot ids (default: every declared plot)")
@click.option("-o", "--out", "out_dir", default="dvc_plots_png", show_default=True, type=click.Path(file_okay=False))
@click.option("--root", default=".", type=click.Path(file_okay=False), help="project root")
def plots_cmd(revs: tuple[str, ...], targets: tuple[str, ...], out_dir: str, root: str) -> None:
    """`dvc plots show` (no REVS) or `dvc plots diff REVS` as PNG files, readable with no network.

    DVC's HTML page loads its chart library from a CDN; this renders the same Vega-Lite plots offline.
    """

    def work() -> None:
        data = plots.plots_json(revs, targets, Path(root), Path(out_dir))
        files = plots.render(data, Path(out_dir), root=Path(root))
        click.echo(f"{len(files)} plots -> {out_dir}/ (index.md lists them)")

    run_stage("plots", work)


@main.command("select")
@click.argument("name")
@click.option(
    "--grid",
    "grid_specs",
    multiple=True,
    required=True,
    metavar="KEY=V1,V2",
    help="a param and its candidate values (repeatable; the grid is every combination)",
)
@click.option("--set", "sets", multiple=True, help="only these training sets of the main grid (repeatable)")
@click.option("--dimension", "dimensions", multiple=True, help="only these dimensions (repeatable)")
@click.option("--variant", "variants", multiple=True, help="only these variants (repeatable)")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--root", default=".", type=click.Path(file_okay=False), help="project root")
@click.option(
    "--work",
    default=None,
    type=click.Path(file_okay=False),
    help="scratch folder for the runs (default: tmp/select/NAME; a rerun resumes from it)",
)
def select_cmd(
    name: str,
    grid_specs: tuple[str, ...],
    sets: tuple[str, ...],
    dimensions: tuple[str, ...],
    variants: tuple[str, ...],
    params_path: str,
    root: str,
    work: str | None,
) -> None:
    """Choose settings on the validation split: fine-tune the grid's cells once per candidate and write
    selection/NAME.json (the mean validation MSE of each candidate, and the winner), which the report reads.

    Needs the pipeline's data and student (`dvc repro variants student`); never reads a test split. Example:
    explainft select objective --grid train.score_target=hard,soft --grid train.score_weight=1,5 --set mixed
    """

    def work_() -> None:
        def on_cell(cand: str, cell: str, result: dict, reused: bool) -> None:
            click.echo(
                f"select {name}: {cand} {cell}: validation MSE {result['validation_mse']:.5f} "
                f"(prior {result['validation_prior_mse']:.5f}){' (kept from an earlier run)' if reused else ''}"
            )

        rec = select(
            load_params(Path(root) / params_path),
            name,
            parse_grid(grid_specs),
            root=Path(root),
            work=Path(work) if work else None,
            sets=sets or None,
            dimensions=dimensions or None,
            variants=variants or None,
            on_cell=on_cell,
        )
        for c in rec["candidates"]:
            click.echo(
                f"  {c['params']}: mean validation MSE {c['mean_validation_mse']:.5f} "
                f"(prior {c['mean_validation_prior_mse']:.5f}; beats the prior in {c['beats_prior']} of "
                f"{len(rec['cells'])} cells)"
            )
        click.echo(f"select {name}: chosen {rec['chosen']} -> selection/{name}.json")

    run_stage("select", work_)
