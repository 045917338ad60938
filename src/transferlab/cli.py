"""The `transferlab` command: one subcommand per pipeline stage.

This is the only module that reads params.yaml; it hands typed objects to the library.
Bad input ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Callable

import typer

from transferlab.config import ConfigError, Params, load_params
from transferlab.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Per-layer transferability of deep network features (Yosinski et al. 2014).")

ParamsOpt = Annotated[Path, typer.Option("--params", help="The experiment configuration.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="'auto' (a free GPU slot, else the CPU), 'cpu', 'cuda:1', ...")]
SplitOpt = Annotated[str, typer.Option("--split", help="Split id: a seed of random halves (0, 1, ...), 'mn' or 'nm'.")]
RepOpt = Annotated[int, typer.Option("--replicate", min=0, help="Replicate number.")]
InFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input file.")]
OutPath = Annotated[Path, typer.Argument(help="Output path.")]
RunDirArg = Annotated[Path, typer.Argument(help="Run folder: metrics.json and the DVCLive log.")]


def fail_cleanly(fn: Callable) -> Callable:
    """Turn expected input errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ConfigError, InputError) as err:
            print(f"error: {err}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def _params(path: Path) -> Params:
    return load_params(path)


def _spec(split: str, target: str, source: str | None = None, n: int = 0, finetune: bool = False, replicate: int = 0):
    from transferlab.runs import RunSpec

    try:
        return RunSpec(split, target, source, n, finetune, replicate)
    except ValueError as err:
        raise InputError(str(err)) from None


@app.command()
@fail_cleanly
def plan(params: ParamsOpt = Path("params.yaml"), ids: Annotated[bool, typer.Option("--ids/--no-ids", help="List every run id.")] = True) -> None:
    """Validate params.yaml and list the runs it asks for, without training anything."""
    from transferlab.runs import planned_runs

    p = _params(params)
    runs = planned_runs(p)
    counts = Counter(r.treatment for r in runs)
    print(f"{params}: valid. {len(runs)} runs: " + ", ".join(f"{t} {c}" for t, c in counts.items()))
    if ids:
        for r in runs:
            print(f"  {r}")


@app.command()
@fail_cleanly
def prepare(out: OutPath, params: ParamsOpt = Path("params.yaml")) -> None:
    """Generate the data set named in params (data.*) as one uint8 tensor file."""
    from transferlab import stages

    ds = stages.prepare(_params(params), out)
    print(f"{out}: {ds.name}, {len(ds.classes)} classes, {len(ds.train_y)} train / {len(ds.test_y)} test images")


@app.command()
@fail_cleanly
def split(dataset: InFile, out: OutPath, split_id: SplitOpt = "0", params: ParamsOpt = Path("params.yaml")) -> None:
    """Split the classes into halves A and B and write the split as JSON."""
    from transferlab import stages

    p = _params(params)
    try:
        s = stages.split(p, split_id, dataset, out)
    except ValueError as err:
        raise InputError(f"--split {split_id}: {err}") from None
    print(f"{out}: split {s.split_id} ({s.method}): A {len(s.classes_a)} classes, B {len(s.classes_b)} classes")


@app.command("train-base")
@fail_cleanly
def train_base(
    dataset: InFile,
    split_file: InFile,
    model_out: OutPath,
    run_dir: RunDirArg,
    split_id: SplitOpt = "0",
    half: Annotated[str, typer.Option("--half", help="Which half to train on: A or B.")] = "A",
    replicate: RepOpt = 0,
    device: DeviceOpt = "auto",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Train the base net of one half (baseA or baseB)."""
    p = _params(params)
    spec = _spec(split_id, half, replicate=replicate)
    from transferlab import stages
    from transferlab.devices import choose_device

    history = stages.train_base(p, spec, dataset, split_file, model_out, run_dir, choose_device(device))
    print(f"{spec}: top-1 {history.records[-1]['test_top1']:.4f}")


@app.command()
@fail_cleanly
def transfer(
    dataset: InFile,
    split_file: InFile,
    model_out: OutPath,
    run_dir: RunDirArg,
    split_id: SplitOpt = "0",
    source: Annotated[str, typer.Option("--source", help="A or B: copy from that base net; R: random control.")] = "A",
    target: Annotated[str, typer.Option("--target", help="The half to train on: A or B.")] = "B",
    n: Annotated[int, typer.Option("--n", min=1, help="Number of layers copied (or kept random).")] = 1,
    finetune: Annotated[bool, typer.Option("--finetune/--frozen", help="Fine-tune the copied layers (AnB+) or freeze them (AnB).")] = False,
    source_model: Annotated[Path | None, typer.Option("--source-model", exists=True, dir_okay=False, help="Checkpoint of the source base net.")] = None,
    replicate: RepOpt = 0,
    device: DeviceOpt = "auto",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Train one treatment: BnB, AnB, BnB+, AnB+ or the random control, for one n."""
    p = _params(params)
    spec = _spec(split_id, target, source, n, finetune, replicate)
    if (source == "R") != (source_model is None):
        raise InputError("--source-model is required for --source A/B and not allowed for --source R")
    from transferlab.models import model_units

    depth = len(model_units(p.model.name, **p.model.options()))
    if n > depth:
        raise InputError(f"--n {n}: allowed 1..{depth} for {p.model.name}")
    from transferlab import stages
    from transferlab.devices import choose_device

    history = stages.transfer(p, spec, dataset, split_file, source_model, model_out, run_dir, choose_device(device))
    print(f"{spec}: top-1 {history.records[-1]['test_top1']:.4f}")


@app.command()
@fail_cleanly
def aggregate(
    results: Annotated[Path, typer.Argument(help="The tidy table (.parquet; a .csv is written beside it).")],
    metrics_out: Annotated[Path, typer.Argument(help="Headline metrics (JSON) for dvc exp show.")],
    root: Annotated[Path, typer.Option("--root", help="Project root that holds data/runs.")] = Path("."),
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Collect exactly the runs params.yaml asks for into one table and headline metrics."""
    from transferlab import aggregate as agg
    from transferlab.artifacts import atomic_json, atomic_write
    from transferlab.runs import Layout, planned_runs

    specs = planned_runs(_params(params))
    df = agg.tidy_table(specs, agg.read_runs(specs, Layout(root).metrics))
    atomic_write(results, lambda tmp: df.to_parquet(tmp, index=False))
    atomic_write(results.with_suffix(".csv"), lambda tmp: df.to_csv(tmp, index=False))
    atomic_json(agg.headline(df), metrics_out)
    print(f"{results}: {len(df)} runs; {metrics_out}")


@app.command()
@fail_cleanly
def plot(
    results: InFile,
    figures: Annotated[Path, typer.Argument(help="Folder for transfer.png and transfer_relative.png.")],
) -> None:
    """Draw the paper's Figure 2 and Figure 3 from the tidy table."""
    import pandas as pd

    from transferlab import plots

    df = pd.read_parquet(results)
    plots.transfer_figure(df, figures / "transfer.png")
    plots.relative_figure(df, figures / "transfer_relative.png")
    print(f"{figures / 'transfer.png'}, {figures / 'transfer_relative.png'}")


def main() -> None:
    """Console-script entry point."""
    app()
