"""The `transferlab` command: one subcommand per pipeline stage.

This is the only module that reads params.yaml; it hands typed objects to the library.
Bad input ends with one line on stderr and exit code 2, never a traceback.

Each command imports the library modules it runs inside its own function: the `code` stage
reads those imports to give every stage the code hash of its command alone (codedeps.py), and
`plan` or `--help` start without torch.
"""

from __future__ import annotations

import enum
import functools
import importlib
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from transferlab.config import ConfigError, Params, load_params
from transferlab.errors import InputError
from transferlab.private import compile_caches

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Per-layer transferability of deep network features (Yosinski et al. 2014).",
)

ParamsOpt = Annotated[Path, typer.Option("--params", help="The experiment configuration.")]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="'auto' (a free GPU slot, else the CPU), 'cpu', 'cuda:1', ...")
]
SplitOpt = Annotated[
    str, typer.Option("--split", help="Split id: a seed (0, 1, ...), 'mn', 'nm', 'classes', 'cross' or 'all'.")
]
RepOpt = Annotated[int, typer.Option("--replicate", min=0, help="Replicate number.")]
InFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Input file.")]
OutPath = Annotated[Path, typer.Argument(help="Output path.")]
RootOpt = Annotated[
    Path, typer.Option("--root", help="Project root: every path of a run follows from its run id (runs.Layout).")
]


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


@app.callback()
@fail_cleanly
def before_every_command() -> None:
    # torchvision's import and torch's FLOP counter pull in torch._dynamo, which makes Inductor's
    # cache folder as it loads (/tmp/torchinductor_<user> unless told otherwise: a fixed path in a
    # shared folder): every command points it at the user's private folder first (private.py).
    compile_caches()


def _params(path: Path) -> Params:
    return load_params(path)


@app.command()
@fail_cleanly
def plan(
    params: ParamsOpt = Path("params.yaml"),
    ids: Annotated[bool, typer.Option("--ids/--no-ids", help="List every run id.")] = True,
    out: Annotated[
        Path | None, typer.Option(help="Also write each study's run ids to OUT/<study>/planned.json (data/runs).")
    ] = None,
) -> None:
    """Validate params.yaml and list the runs it asks for, without training anything."""
    from transferlab.artifacts import atomic_json
    from transferlab.config import check_graph_keys
    from transferlab.runs import PLANNED_FILE, planned_by_study

    p = _params(params)
    graph = params.resolve().parent / "dvc.yaml"
    if graph.is_file():  # DVC reads these keys from the file itself, with no defaults
        check_graph_keys(params, p, graph)
    by_study = planned_by_study(p)
    every_class = {"base_all": "base on every class", "random_all": "random on every class"}
    counts = Counter(every_class.get(r.treatment, r.treatment) for r in by_study["grid"]) + Counter(
        "binary A'" if r.frozen is None else "binary on B" for r in by_study["binary"]
    )
    counts += Counter(
        "cut" if r.name == "cut" else "no transfer" if r.source == "none" else "strategy"
        for r in by_study["strategies"]
    )
    counts += Counter("dataset size" for _ in by_study["size"])
    every = [r for planned in by_study.values() for r in planned]
    runs = ", ".join(f"{t} {c}" for t, c in counts.items()) or "no net is trained (the pretrained net's analysis only)"
    print(f"{params}: valid. {len(every)} runs: {runs}")
    if ids:
        for r in every:
            print(f"  {r}")
    if out is not None:  # the plan stage: what each study's report stage reads
        for study, planned in by_study.items():
            atomic_json({"runs": [str(r) for r in planned]}, out / study / PLANNED_FILE)
            print(f"{out / study / PLANNED_FILE}: {len(planned)} runs")


@app.command()
@fail_cleanly
def settings(
    out: Annotated[Path, typer.Argument(help="Folder of the settings files (data/settings).")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Write each study's effective training settings (`train` and its overrides) as <study>.json."""
    from transferlab.artifacts import atomic_json

    studies = _params(params).settings()
    for study, values in studies.items():
        atomic_json(values, out / f"{study}.json")
    print(f"{out}: " + ", ".join(f"{study}.json" for study in studies))


@app.command()
@fail_cleanly
def schema(
    out: Annotated[Path, typer.Argument(help="The schema file.")] = Path("params.schema.json"),
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Write the JSON Schema of params.yaml (types, bounds, defaults, and each key's comment in
    params.yaml as its description), which editors read through the file's modeline."""
    from transferlab.artifacts import atomic_write
    from transferlab.config.schema import params_schema

    text = json.dumps(params_schema(params.read_text()), indent=1) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text))
    print(f"{out}: the schema of {params}")


@app.command()
@fail_cleanly
def code(out: Annotated[Path, typer.Argument(help="Folder of the digests (data/code).")]) -> None:
    """Write, for every stage's command, the project's source files it imports and their
    hashes (<command>.json): each stage depends on its command's file. Beside them, each file's
    bytes hash -> its behaviour hash (source_hashes.json: no stage depends on it)."""
    from transferlab.artifacts import atomic_json
    from transferlab.codedeps import (
        IMPORTED,
        ROOT,
        SOURCE_HASHES,
        digest,
        imported_differs,
        source_hashes,
        stage_commands,
    )

    if differs := imported_differs():  # the hashes would describe code that does not run
        raise InputError(
            f"{IMPORTED / differs} (the transferlab Python imports) differs from {ROOT / differs}: "
            "install this checkout (pip install -e .) or run with PYTHONPATH=src"
        )
    for command in stage_commands():
        atomic_json(digest(command), out / f"{command}.json")
    atomic_json(source_hashes(), out / SOURCE_HASHES)
    print(f"{out}: " + ", ".join(f"{c}.json" for c in stage_commands()) + f", {SOURCE_HASHES}")


@app.command()
@fail_cleanly
def download(params: ParamsOpt = Path("params.yaml")) -> None:
    """Fetch (data.download: true) or check (against the published MD5 sums) the original files
    of the data sets in params into data.root; the synthetic set needs none."""
    from transferlab.data.download import download as run_download

    p = _params(params)
    for line in run_download(p.data, Path(p.data.root)):
        print(line)


@app.command()
@fail_cleanly
def prepare(out: OutPath, params: ParamsOpt = Path("params.yaml")) -> None:
    """Generate the data set named in params (data.*) as one uint8 tensor file."""
    from transferlab.data import stages

    ds = stages.prepare(_params(params), out)
    print(f"{out}: {ds.name}, {len(ds.classes)} classes, {len(ds.train_y)} train / {len(ds.test_y)} test images")


@app.command()
@fail_cleanly
def split(dataset: InFile, out: OutPath, split_id: SplitOpt = "0", params: ParamsOpt = Path("params.yaml")) -> None:
    """Split the classes into halves A and B and write the split as JSON."""
    from transferlab.data import stages

    p = _params(params)
    s = stages.split(p, split_id, dataset, out)
    print(f"{out}: split {s.split_id} ({s.method}): A {len(s.classes_a)} classes, B {len(s.classes_b)} classes")


@app.command()
@fail_cleanly
def train(
    run_id: Annotated[
        str,
        typer.Argument(
            help="The run to train, e.g. s0/baseA/r0, s0/A3B+/r0, s0/binB_b0.5_h1_p0_f0/r0, s0/strat-classifier-i10/r0, s0/cut4/r0."
        ),
    ],
    device: DeviceOpt = "auto",
    root: RootOpt = Path("."),
    params: ParamsOpt = Path("params.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Train again even if the run's outputs are current.")] = False,
) -> None:
    """Train one run of any study (base net, treatment, A' net, fine-tuning, strategy, cut net)."""
    from transferlab.runs import Layout, parse_run, planned_all

    p = _params(params)
    try:
        run = parse_run(run_id)
    except ValueError as err:
        raise InputError(str(err)) from None
    if run not in planned_all(p):
        raise InputError(f"{run_id}: not a run that {params} asks for (see transferlab plan)")
    layout = Layout.of(p, root)
    missing = [str(path) for path in layout.inputs(run) if not path.exists()]
    if missing:
        raise InputError(f"{run_id}: missing input(s) {', '.join(missing)} (run the stages that make them first)")
    from transferlab.devices import choose_device, cpu_threads
    from transferlab.harness import is_current
    from transferlab.studies.dispatch import train as train_any

    if not force and is_current(p, run, layout):
        print(
            f"{run}: up to date (its outputs were made by this code from these inputs and params); --force trains it again"
        )
        return
    chosen = choose_device(device)
    with cpu_threads(p.threads, chosen):
        train_any(p, run, layout, chosen)
    print(f"{run}: {reported_line(json.loads(layout.metrics(run).read_text()))}")


def reported_line(m: dict) -> str:
    """A run's last evaluation and the top-1 its reports use, each by its name (and the mean
    per-class accuracy at the same evaluations, where the test classes are unbalanced)."""
    from transferlab.accuracy import MEAN_CLASS
    from transferlab.stats import STATISTIC_TEXT, reported_top1, statistic_of

    line = f"final test top-1 {m['final_top1']:.4f}; reported top-1 {reported_top1(m):.4f} ({STATISTIC_TEXT[statistic_of(m)]})"
    return line + (f"; mean per-class accuracy there {m[MEAN_CLASS]:.4f}" if MEAN_CLASS in m else "")


@app.command()
@fail_cleanly
def pretrained(
    out: OutPath,
    weights: Annotated[
        str, typer.Option("--weights", help="Weight name of model.name, e.g. IMAGENET1K_V1, DEFAULT or checkpoint.")
    ] = "DEFAULT",
    root: RootOpt = Path("."),
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Turn the published ImageNet weights of model.name, or a net of it trained elsewhere
    (--weights checkpoint: data/sources/checkpoint.pt), into a source net (P)."""
    from transferlab.runs import Layout
    from transferlab.studies.grid.train import pretrained as convert

    p = _params(params)
    classes = convert(p, weights, out, Layout.of(p, root))
    print(f"{out}: {p.model.name} {weights}, {len(classes)} classes")


@app.command()
@fail_cleanly
def features(
    out: Annotated[Path, typer.Argument(help="Folder of the feature cache (data/features/s0/r0).")],
    split_id: SplitOpt = "0",
    replicate: RepOpt = 0,
    device: DeviceOpt = "auto",
    root: RootOpt = Path("."),
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Extract every unit's features of baseA, baseB (A' nets, the pretrained net) and the transfer nets on B's images."""
    p = _params(params)
    planned = [str(s) for s in p.splits]
    if split_id not in planned or replicate not in p.replicates:
        # the split id becomes part of paths: only the ones params.yaml asks for are taken
        raise InputError(
            f"--split {split_id} --replicate {replicate}: not a split and replicate that {params} asks for (splits {planned}, replicates {p.replicates})"
        )
    from transferlab.analysis.extract import extract, feature_nets
    from transferlab.devices import choose_device, cpu_threads
    from transferlab.runs import Layout, planned_all

    chosen = choose_device(device)
    runs = [r for r in planned_all(p) if r.split == split_id and r.replicate == replicate]  # passed down
    layout = Layout.of(p, root)
    nets, transfer = feature_nets(p, layout, runs)  # a missing checkpoint is named before waiting for cores
    with cpu_threads(p.threads, chosen):
        index = extract(p, split_id, replicate, nets, transfer, layout, out, chosen)
    print(
        f"{out}: {len(index['sources'])} source nets and {len(index['transfer'])} transfer nets, {index['depth']} units each"
    )


@app.command()
@fail_cleanly
def analyze(
    features_dir: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="The feature cache of one split and replicate.")
    ],
    out: OutPath,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Per unit of each analysed net: probes, LogME, LEEP, H-score for B; CKA between units."""
    p = _params(params)
    from transferlab.analysis.stage import analyze as run_analysis

    result = run_analysis(p.analysis, features_dir, out, p.seed)
    print(f"{out}: {len(result['rows'])} values")


# Each study's report module, imported by `transferlab report <study>` alone: a study's report
# stage depends on the code of that study only (codedeps reads this table for
# data/code/report-<study>.json).
REPORT_MODULES = {
    "grid": "transferlab.studies.grid.report",  # base nets, treatments, random control: Figures 2 and 3
    "binary": "transferlab.studies.binary.report",  # A' nets, their fine-tuning on B, the heads' curves
    "strategies": "transferlab.studies.strategies.report",  # which strategy when, and the cut study
    "size": "transferlab.studies.size.report",  # top-1 by images per class, beside the paper's nets
    "analysis": "transferlab.analysis.report",  # probes, CKA, estimates, the DeCAF table
}
ReportStudy = enum.Enum("ReportStudy", {s: s for s in REPORT_MODULES}, type=str)


@app.command()
@fail_cleanly
def report(
    study: Annotated[ReportStudy, typer.Argument(help="The study whose runs are reported.")],
    root: RootOpt = Path("."),
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """A study's report: its table, headline numbers, tables and figures, from its planned runs."""
    from transferlab.report import write_report
    from transferlab.runs import STUDIES, Layout

    p = _params(params)
    layout = Layout.of(p, root)
    runs = layout.read_planned(study.value) if study.value in STUDIES else []  # the plan stage's list, passed down
    build = importlib.import_module(REPORT_MODULES[study.value]).build
    for line in write_report(study.value, build(p, layout, runs), layout):
        print(line)


def run_app() -> int:
    """Run the command; return its exit code. A usage error (unknown option, missing or bad
    argument) becomes one line on stderr and exit code 2, like every other bad input."""
    try:
        code = app(standalone_mode=False, prog_name="transferlab")  # click returns the exit code instead of exiting
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
    finish(run_app())


def finish(code: int) -> None:
    """Flush and end the process now (see main)."""
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
