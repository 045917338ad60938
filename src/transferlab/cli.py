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
SplitOpt = Annotated[str, typer.Option("--split", help="Split id: a seed (0, 1, ...), 'mn', 'nm', 'classes', 'cross' or 'all'.")]
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


def _check_n(p: Params, n: int) -> None:
    """--n must name one of the model's units."""
    from transferlab.models import model_units

    depth = len(model_units(p.model.name, **p.model.options()))
    if n > depth:
        raise InputError(f"--n {n}: allowed 1..{depth} for {p.model.name}")


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
    from transferlab.runs import planned_binary_runs, planned_runs, planned_strategy_runs

    p = _params(params)
    runs, binary, strategies = planned_runs(p), planned_binary_runs(p), planned_strategy_runs(p)
    counts = Counter(r.treatment for r in runs) + Counter("binary A'" if r.frozen is None else "binary on B" for r in binary)
    counts += Counter("cut" if r.name == "cut" else "strategy" for r in strategies)
    total = len(runs) + len(binary) + len(strategies)
    print(f"{params}: valid. {total} runs: " + ", ".join(f"{t} {c}" for t, c in counts.items()))
    if ids:
        for r in [*runs, *binary, *strategies]:
            print(f"  {r}")


@app.command()
@fail_cleanly
def settings(out: Annotated[Path, typer.Argument(help="Folder of the settings files (data/settings).")], params: ParamsOpt = Path("params.yaml")) -> None:
    """Write each study's effective training settings (`train` and its overrides) as <study>.json."""
    from transferlab.artifacts import atomic_json

    studies = _params(params).settings()
    for study, values in studies.items():
        atomic_json(values, out / f"{study}.json")
    print(f"{out}: " + ", ".join(f"{study}.json" for study in studies))


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
    s = stages.split(p, split_id, dataset, out)
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
    source: Annotated[str, typer.Option("--source", help="A or B: copy from that base net; R: random control; P: a pretrained net.")] = "A",
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
        raise InputError("--source-model is required for --source A/B/P and not allowed for --source R")
    _check_n(p, n)
    from transferlab import stages
    from transferlab.devices import choose_device

    history = stages.transfer(p, spec, dataset, split_file, source_model, model_out, run_dir, choose_device(device))
    print(f"{spec}: top-1 {history.records[-1]['test_top1']:.4f}")


@app.command()
@fail_cleanly
def pretrained(
    out: OutPath,
    weights: Annotated[str, typer.Option("--weights", help="torchvision weight name of model.name, e.g. IMAGENET1K_V1 or DEFAULT.")] = "DEFAULT",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Turn torchvision's published ImageNet weights of model.name into a source net (P)."""
    from transferlab import stages

    p = _params(params)
    classes = stages.pretrained(p, weights, out)
    print(f"{out}: {p.model.name} {weights}, {len(classes)} classes")


SourceModelOpt = Annotated[Path, typer.Option("--source-model", exists=True, dir_okay=False, help="Checkpoint of the source net (baseA).")]


@app.command()
@fail_cleanly
def strategy(
    dataset: InFile,
    split_file: InFile,
    model_out: OutPath,
    run_dir: RunDirArg,
    source_model: SourceModelOpt,
    name: Annotated[str, typer.Option("--name", help="classifier, extra_fc, finetune_top or finetune_all.")],
    images_per_class: Annotated[str, typer.Option("--images-per-class", help="B's training images per class, or 'all'.")] = "all",
    split_id: SplitOpt = "0",
    replicate: RepOpt = 0,
    device: DeviceOpt = "auto",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Train one transfer strategy from baseA on (a subset of) B."""
    from transferlab.strategies import STRATEGIES

    p = _params(params)
    if name not in STRATEGIES:
        raise InputError(f"--name {name}: allowed {', '.join(STRATEGIES)}")
    if images_per_class != "all" and not (images_per_class.isdigit() and int(images_per_class) >= 1):
        raise InputError(f"--images-per-class {images_per_class}: allowed a number >= 1 or 'all'")
    from transferlab import strategy_stages
    from transferlab.devices import choose_device
    from transferlab.runs import StrategyRun

    k = images_per_class if images_per_class == "all" else int(images_per_class)
    run = StrategyRun(split_id, name, k, 0, replicate)
    history = strategy_stages.strategy(p, run, dataset, split_file, source_model, model_out, run_dir, choose_device(device))
    print(f"{run}: top-1 {history.records[-1]['test_top1']:.4f}")


@app.command()
@fail_cleanly
def cut(
    dataset: InFile,
    split_file: InFile,
    model_out: OutPath,
    run_dir: RunDirArg,
    source_model: SourceModelOpt,
    n: Annotated[int, typer.Option("--n", min=1, help="Keep units 1..n.")] = 1,
    source: Annotated[str, typer.Option("--source", help="A: --source-model is baseA; P: the pretrained net.")] = "A",
    split_id: SplitOpt = "0",
    replicate: RepOpt = 0,
    device: DeviceOpt = "auto",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Cut baseA (or the pretrained net) after unit n, add pooling and a classifier, fine-tune on B, measure its cost."""
    p = _params(params)
    _check_n(p, n)
    if source not in ("A", "P"):
        raise InputError(f"--source {source}: allowed A or P")
    from transferlab import strategy_stages
    from transferlab.devices import choose_device
    from transferlab.runs import StrategyRun

    run = StrategyRun(split_id, "cut", "all", n, replicate, source)
    history = strategy_stages.cut(p, run, dataset, split_file, source_model, model_out, run_dir, choose_device(device))
    print(f"{run}: top-1 {history.records[-1]['test_top1']:.4f}")


BetaOpt = Annotated[float, typer.Option("--beta", min=0.0, max=1.0, help="Loss weight of the binary heads (0: the plain net).")]
PartitionOpt = Annotated[int, typer.Option("--partition-seed", min=0, help="Seed of the random partitions of A's classes.")]


@app.command("binary-base")
@fail_cleanly
def binary_base(
    dataset: InFile,
    split_file: InFile,
    model_out: OutPath,
    run_dir: RunDirArg,
    split_id: SplitOpt = "0",
    beta: BetaOpt = 0.0,
    partition_seed: PartitionOpt = 0,
    replicate: RepOpt = 0,
    device: DeviceOpt = "auto",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Train an A' net: A's classifier plus binary-partition heads (the binary study)."""
    p = _params(params)
    from transferlab import stages
    from transferlab.devices import choose_device

    history = stages.binary_base(p, split_id, beta, partition_seed, replicate, dataset, split_file, model_out, run_dir, choose_device(device))
    print(f"A' (beta {beta:g}, partition {partition_seed}): top-1 on A {history.records[-1]['test_top1']:.4f}")


@app.command("binary-finetune")
@fail_cleanly
def binary_finetune(
    dataset: InFile,
    split_file: InFile,
    model_out: OutPath,
    run_dir: RunDirArg,
    source_model: Annotated[Path, typer.Option("--source-model", exists=True, dir_okay=False, help="Checkpoint of the A' net.")],
    split_id: SplitOpt = "0",
    beta: BetaOpt = 0.0,
    partition_seed: PartitionOpt = 0,
    frozen: Annotated[int, typer.Option("--frozen", min=0, help="Units kept frozen (the first k).")] = 0,
    replicate: RepOpt = 0,
    device: DeviceOpt = "auto",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Fine-tune an A' net on B: binary heads removed, new classifier, early stopping."""
    p = _params(params)
    from transferlab import stages
    from transferlab.devices import choose_device

    history = stages.binary_finetune(p, split_id, beta, partition_seed, frozen, replicate, dataset, split_file, source_model, model_out, run_dir, choose_device(device))
    print(f"A' (beta {beta:g}) fine-tuned on B: top-1 {history.records[-1]['test_top1']:.4f}")


@app.command()
@fail_cleanly
def features(
    dataset: InFile,
    split_file: InFile,
    models: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Folder of the split's nets (data/models/s0).")],
    out: Annotated[Path, typer.Argument(help="Folder of the feature cache (data/features/s0/r0).")],
    binary_models: Annotated[Path | None, typer.Option("--binary-models", help="Folder of the split's A' nets (data/binary/s0).")] = None,
    split_id: SplitOpt = "0",
    replicate: RepOpt = 0,
    device: DeviceOpt = "auto",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Extract every unit's features of baseA, baseB (A' nets, the pretrained net) and the transfer nets on B's images."""
    p = _params(params)
    from transferlab.analysis.extract import extract
    from transferlab.devices import choose_device

    index = extract(p, split_id, replicate, dataset, split_file, models, out, choose_device(device), binary_models)
    print(f"{out}: {len(index['sources'])} source nets and {len(index['transfer'])} transfer nets, {index['depth']} units each")


@app.command()
@fail_cleanly
def analyze(
    features_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="The feature cache of one split and replicate.")],
    out: OutPath,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Per unit of each analysed net: probes, LogME, LEEP, H-score for B; CKA between units."""
    p = _params(params)
    from transferlab.analysis.stage import analyze as run_analysis

    result = run_analysis(p.analysis, features_dir, out)
    print(f"{out}: {len(result['rows'])} values")


@app.command()
@fail_cleanly
def aggregate(
    results: Annotated[Path, typer.Argument(help="The tidy table (.parquet; a .csv is written beside it).")],
    metrics_out: Annotated[Path, typer.Argument(help="Headline metrics (JSON) for dvc exp show.")],
    root: Annotated[Path, typer.Option("--root", help="Project root that holds data/runs.")] = Path("."),
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Collect exactly the runs params.yaml asks for into one table and headline metrics."""
    from transferlab.aggregate import write_reports
    from transferlab.runs import Layout

    for line in write_reports(_params(params), Layout(root), results, metrics_out):
        print(line)


@app.command()
@fail_cleanly
def plot(
    results: InFile,
    figures: Annotated[Path, typer.Argument(help="Folder of the figures (PNG).")],
) -> None:
    """Draw the paper's Figures 2 and 3, the binary study's and the analysis' figures."""
    import pandas as pd

    from transferlab.figures import draw_all

    for line in draw_all(pd.read_parquet(results), figures):
        print(line)


def _run_app() -> int:
    """Run the command; return its exit code. A usage error (unknown option, missing or bad
    argument) becomes one line on stderr and exit code 2, like every other bad input."""
    try:
        code = app(standalone_mode=False)  # click returns the exit code instead of exiting
        return code if isinstance(code, int) else 0
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 1
    except Exception as err:  # click's UsageError family, as vendored by Typer: duck-typed
        if not callable(getattr(err, "format_message", None)) or not hasattr(err, "exit_code"):
            raise
        ctx = getattr(err, "ctx", None)
        command = ctx.command_path if ctx is not None else "transferlab"
        if err.format_message():  # (no arguments at all: the help was shown instead)
            print(f"error: {command}: {err.format_message()} (see {command} --help)", file=sys.stderr)
        return err.exit_code


def main() -> None:
    """Console-script entry point.

    Ends the process with os._exit once the command has returned and every output is written,
    flushed and renamed into place: the interpreter's teardown of torch and DVC modules
    costs 0.5-1 s per process, paid once per run of a grid of hundreds."""
    import logging
    import os

    code = _run_app()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
