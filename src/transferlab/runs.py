"""Run ids: one parseable name per training run, used for folders, stages and table rows.

s0/baseA/r0    base net on half A of split 0, replicate 0
s0/A3B/r0      first 3 layers from baseA, frozen, rest trained on B  (AnB)
s0/B3B+/r0     first 3 layers from baseB, fine-tuned, trained on B  (BnB+)
s0/R3B/r0      first 3 layers at random initialisation, frozen      (random control)
s0/P3B+/r0     first 3 layers of a pretrained torchvision net, fine-tuned (PnB+)
smn/A3B/r0     the same on the man-made (A) / natural (B) split
sall/R3all/r0  first 3 layers random and frozen, trained on every class (the paper's control)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.config import NAMED_SPLITS, Params
from transferlab.errors import MissingRunError

# --- the grammar: one form per kind of name, which both formats and parses -------------------
# A field: (regex, from text, to text). Betas are spelled as DVC spells params values in
# folder names (0.0, 0.5: Python's repr of the float).
FIELDS: dict[str, tuple[str, Callable[[str], Any], Callable[[Any], str]]] = {
    "split": (rf"\d+|{'|'.join(NAMED_SPLITS)}", str, str),
    "replicate": (r"\d+", int, str),
    "half": (r"[AB]", str, str),
    "source": (r"[ABRP]", str, str),
    "n": (r"\d+", int, str),
    "plus": (r"\+?", lambda t: t == "+", lambda b: "+" if b else ""),
    "beta": (r"\d+\.\d+", float, repr),
    "heads": (r"\d+", int, str),
    "partition_seed": (r"\d+", int, str),
    "frozen": (r"\d+", int, str),
    "pretrained": (r"P?", lambda t: "P" if t else "A", lambda source: "P" if source == "P" else ""),
    "name": (r"\w+?", str, str),
    "images": (r"\d+|all", lambda t: t if t == "all" else int(t), str),
    "baseline": (r"scratch", str, str),
}


@dataclass(frozen=True)
class IdForm:
    """One kind of run id (or of a name derived from one), as a template of FIELDS."""

    template: str

    def format(self, **values: Any) -> str:
        return self.template.format(**{k: FIELDS[k][2](v) for k, v in values.items()})

    def parse(self, text: str) -> dict | None:
        """The fields of `text`, or None if it is not of this form."""
        m = self._regex.fullmatch(text)
        return None if m is None else {k: FIELDS[k][1](v) for k, v in m.groupdict().items()}

    @property
    def _regex(self) -> re.Pattern:
        parts = re.split(r"\{(\w+)\}", self.template)  # literal, field, literal, field, ...
        return re.compile(
            "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{FIELDS[p][0]})" for i, p in enumerate(parts))
        )


BASE_ID = IdForm("s{split}/base{half}/r{replicate}")
TREATMENT_ID = IdForm("s{split}/{source}{n}{half}{plus}/r{replicate}")
BINARY_A_ID = IdForm("s{split}/binA_b{beta}_h{heads}_p{partition_seed}/r{replicate}")
BINARY_B_ID = IdForm("s{split}/binB_b{beta}_h{heads}_p{partition_seed}_f{frozen}/r{replicate}")
STRATEGY_ID = IdForm("s{split}/strat{pretrained}-{name}-i{images}/r{replicate}")
CUT_ID = IdForm("s{split}/cut{pretrained}{n}/r{replicate}")
BASELINE_ID = IdForm("s{split}/{baseline}-i{images}/r{replicate}")
SIZE_ID = IdForm("s{split}/size-i{images}/r{replicate}")
CONTROL_ALL_ID = IdForm("s{split}/R{n}all/r{replicate}")
# Names derived from run ids: seeds of a run's parts, feature-cache folders, per-split files.
SUBSET_SEED = IdForm("s{split}/subset/r{replicate}")
HEADS_SEED = IdForm("s{split}/binB_f{frozen}/r{replicate}")
A_PRIME_FOLDER = IdForm("binA_b{beta}_h{heads}")
SPLIT_FILE = IdForm("s{split}.json")
SPLIT_NAME = IdForm("s{split}")
REPLICATE_FILE = IdForm("r{replicate}.json")
REPLICATE_FOLDER = IdForm("r{replicate}")


@dataclass(frozen=True, order=True)
class RunSpec:
    """One training run. `source` is None for a base net, "R" for the random control."""

    split: str
    target: str
    source: str | None = None
    n: int = 0
    finetune: bool = False
    replicate: int = 0

    def __post_init__(self) -> None:
        if self.target not in ("A", "B"):
            raise ValueError(f"target must be 'A' or 'B', found {self.target!r}")
        if self.source is not None and (self.source not in ("A", "B", "R", "P") or self.n < 1):
            raise ValueError(f"a transfer run needs a source A, B, R or P and n >= 1, found {self.source!r}, {self.n}")
        if self.source == "R" and self.finetune:
            raise ValueError("the random control keeps its layers frozen (no '+')")

    def __str__(self) -> str:
        fields = dict(split=self.split, half=self.target, replicate=self.replicate)
        if self.source is None:
            return BASE_ID.format(**fields)
        return TREATMENT_ID.format(**fields, source=self.source, n=self.n, plus=self.finetune)

    @classmethod
    def parse(cls, run_id: str) -> RunSpec:
        """Inverse of str(): `RunSpec.parse(str(spec)) == spec`."""
        if f := BASE_ID.parse(run_id):
            return cls(f["split"], f["half"], replicate=f["replicate"])
        if f := TREATMENT_ID.parse(run_id):
            return cls(f["split"], f["half"], f["source"], f["n"], f["plus"], f["replicate"])
        raise ValueError(f"not a run id: {run_id!r} (expected e.g. s0/baseA/r0, s0/A3B+/r0, s0/R3B/r0)")

    @property
    def is_base(self) -> bool:
        return self.source is None

    @property
    def treatment(self) -> str:
        """The paper's name, relative to the target: base, BnB, AnB, BnB+, AnB+ or random.

        Runs onto A (the B-to-A direction) get the same names, so both directions pool."""
        if self.source is None:
            return "base"
        if self.source == "R":
            return "random"
        if self.source == "P":
            return "PnB" + ("+" if self.finetune else "")
        return ("BnB" if self.source == self.target else "AnB") + ("+" if self.finetune else "")

    @property
    def kind(self) -> str:
        """What sets a run's duration (benchmarks): its treatment."""
        return self.treatment

    @property
    def source_base(self) -> RunSpec | None:
        """The base run whose layers this run copies (None for bases and the random control)."""
        if self.source in ("A", "B"):
            return RunSpec(self.split, self.source, replicate=self.replicate)
        return None

    def seed(self, root_seed: int) -> int:
        return seed_of(root_seed, str(self))


def seed_of(root_seed: int, name: str) -> int:
    """A seed that differs per run name and root seed, stable across processes."""
    import zlib

    return zlib.crc32(f"{root_seed}:{name}".encode()) & 0x7FFFFFFF


def planned_runs(params: Params) -> list[RunSpec]:
    """Every run that params.yaml asks for, bases first."""
    runs: list[RunSpec] = []
    for split in params.splits:
        for rep in params.replicates:
            runs += [RunSpec(str(split), half, replicate=rep) for half in params.base_nets]
            for target in params.transfer.targets:
                for n in params.transfer.layers:
                    for source in ("B" if target == "B" else "A", "A" if target == "B" else "B"):
                        runs += [RunSpec(str(split), target, source, n, ft, rep) for ft in (False, True)]
                    runs.append(RunSpec(str(split), target, "R", n, False, rep))
                    if params.pretrained.weights:
                        runs += [RunSpec(str(split), target, "P", n, ft, rep) for ft in (False, True)]
    return runs


@dataclass(frozen=True, order=True)
class BinaryRun:
    """A run of the binary-partition study: an A' net (frozen None) or its fine-tuning on B.

    s0/binA_b0.5_h1_p0/r0       A' net, beta 0.5, 1 binary head, partition seed 0, on A of split 0
    s0/binB_b0.5_h1_p0_f0/r0    that net fine-tuned on B with the first 0 units frozen
    beta is spelled as DVC spells the params value in folder names (0.0, 0.5). Every head
    count has its own beta = 0 control (the same net for every count: at beta = 0 the heads
    get no gradient), so that each (beta, heads) pair has a control of the same id pattern."""

    split: str
    beta: float
    partition_seed: int
    replicate: int = 0
    frozen: int | None = None
    heads: int = 1

    def __str__(self) -> str:
        fields = dict(split=self.split, beta=self.beta, heads=self.heads, partition_seed=self.partition_seed)
        if self.frozen is None:
            return BINARY_A_ID.format(**fields, replicate=self.replicate)
        return BINARY_B_ID.format(**fields, frozen=self.frozen, replicate=self.replicate)

    @property
    def source(self) -> BinaryRun:
        """The A' net that a fine-tuning run starts from."""
        return BinaryRun(self.split, self.beta, self.partition_seed, self.replicate, heads=self.heads)

    @property
    def kind(self) -> str:
        return "binaryA" if self.frozen is None else f"binaryB_f{self.frozen}"


def planned_binary_runs(params: Params) -> list[BinaryRun]:
    """Every A' net and fine-tuning run of the binary study that params.yaml asks for."""
    b = params.binary
    runs = []
    for split in params.splits:
        for rep in params.replicates:
            for p in b.partition_seeds:
                for beta in b.betas:
                    for h in b.heads:
                        runs.append(BinaryRun(str(split), beta, p, rep, heads=h))
                        runs += [BinaryRun(str(split), beta, p, rep, k, h) for k in b.frozen_units]
    return runs


@dataclass(frozen=True)
class StrategyRun:
    """A run of the strategies study or the cut study, on B.

    s0/strat-finetune_top-i10/r0   finetune_top from baseA with 10 training images per class
    s0/stratP-classifier-i10/r0    a strategy from the pretrained net
    s0/cut4/r0                     units 1..4 of baseA, pooling, a new classifier
    s0/cutP4/r0                    the same from the pretrained net
    s0/scratch-i10/r0              no transfer: random initialisation, trained on B (a baseline)"""

    split: str
    name: str  # a strategy, "cut", or a baseline ("scratch")
    images_per_class: int | str = "all"
    n: int = 0
    replicate: int = 0
    source: str = "A"  # "A" (baseA), "P" (the pretrained net) or "none" (a baseline)

    def __str__(self) -> str:
        fields = dict(split=self.split, pretrained=self.source, replicate=self.replicate)
        if self.name == "cut":
            return CUT_ID.format(**fields, n=self.n)
        if self.source == "none":
            return BASELINE_ID.format(
                split=self.split, baseline=self.name, images=self.images_per_class, replicate=self.replicate
            )
        return STRATEGY_ID.format(**fields, name=self.name, images=self.images_per_class)

    @property
    def kind(self) -> str:
        """What sets its duration: its name (cut4, strat-finetune_top-i10)."""
        return run_name(self)


def planned_strategy_runs(params: Params) -> list[StrategyRun]:
    """Every strategy and cut run that params.yaml asks for."""
    s = params.strategies
    runs = []
    for split in params.splits:
        for rep in params.replicates:
            runs += [StrategyRun(str(split), name, k, 0, rep) for name in s.names for k in s.images_per_class]
            runs += [StrategyRun(str(split), b, k, 0, rep, "none") for b in s.baselines for k in s.images_per_class]
            runs += [StrategyRun(str(split), "cut", "all", n, rep) for n in s.cut_layers]
            if params.pretrained.weights:
                runs += [StrategyRun(str(split), name, k, 0, rep, "P") for name in s.names for k in s.images_per_class]
                runs += [StrategyRun(str(split), "cut", "all", n, rep, "P") for n in s.cut_layers]
    return runs


@dataclass(frozen=True, order=True)
class SizeRun:
    """A net of the dataset-size study: trained on every class from `images_per_class`
    training images of each (nested seeded subsets), like the paper's reduced-data nets.

    sall/size-i10/r0   10 images per class of every class ("all"), replicate 0"""

    images_per_class: int
    replicate: int = 0
    split = "all"  # every class (no split file), and the subset seed of split "all"

    def __str__(self) -> str:
        return SIZE_ID.format(split=self.split, images=self.images_per_class, replicate=self.replicate)

    @property
    def kind(self) -> str:
        return "size"


def planned_size_runs(params: Params) -> list[SizeRun]:
    """Every net of the dataset-size study that params.yaml asks for."""
    return [SizeRun(k, rep) for k in params.size.images_per_class for rep in params.replicates]


@dataclass(frozen=True)
class AllClassesControl:
    """The paper's random-weights control (its nolearn nets): a net on every class whose first
    n units stay at random initialisation, frozen, read against the net on every class with
    none random (n = 0: its base, the paper's netbase) of the same replicate; part of the grid.

    sall/R3all/r0   units 1..3 random and frozen, the rest trained on every class"""

    n: int
    replicate: int = 0
    split = "all"  # every class (no split file)
    source = "R"
    target = "all"
    finetune = False
    is_base = False

    def __str__(self) -> str:
        return CONTROL_ALL_ID.format(split=self.split, n=self.n, replicate=self.replicate)

    @property
    def treatment(self) -> str:
        return "base_all" if self.n == 0 else "random_all"

    @property
    def kind(self) -> str:
        return self.treatment

    def seed(self, root_seed: int) -> int:
        return seed_of(root_seed, str(self))


def planned_control_runs(params: Params) -> list[AllClassesControl]:
    """The all-class random control that params.yaml asks for (transfer.control_all_classes)."""
    return [AllClassesControl(n, rep) for n in params.transfer.control_all_classes for rep in params.replicates]


Run = RunSpec | BinaryRun | StrategyRun | SizeRun | AllClassesControl


def run_name(run: Run) -> str:
    """A run id without its split and replicate (A3B+, cut4, strat-finetune_top-i10): the
    middle part that every form above shares."""
    return str(run).split("/")[1]


def parse_run(run_id: str) -> Run:
    """Any run id of any study: the inverse of str() of RunSpec, BinaryRun and StrategyRun."""
    if f := BINARY_A_ID.parse(run_id):
        return BinaryRun(f["split"], f["beta"], f["partition_seed"], f["replicate"], heads=f["heads"])
    if f := BINARY_B_ID.parse(run_id):
        return BinaryRun(f["split"], f["beta"], f["partition_seed"], f["replicate"], f["frozen"], f["heads"])
    if f := STRATEGY_ID.parse(run_id):
        return StrategyRun(f["split"], f["name"], f["images"], 0, f["replicate"], f["pretrained"])
    if f := CUT_ID.parse(run_id):
        return StrategyRun(f["split"], "cut", "all", f["n"], f["replicate"], f["pretrained"])
    if f := BASELINE_ID.parse(run_id):
        return StrategyRun(f["split"], f["baseline"], f["images"], 0, f["replicate"], "none")
    if (f := SIZE_ID.parse(run_id)) and f["split"] == SizeRun.split:
        return SizeRun(f["images"], f["replicate"])
    if (f := CONTROL_ALL_ID.parse(run_id)) and f["split"] == AllClassesControl.split:
        return AllClassesControl(f["n"], f["replicate"])
    return RunSpec.parse(run_id)


def planned_all(params: Params) -> list[Run]:
    """Every training run params.yaml asks for, of every study."""
    return [
        *planned_runs(params),
        *planned_control_runs(params),
        *planned_binary_runs(params),
        *planned_strategy_runs(params),
        *planned_size_runs(params),
    ]


PLANNED_FILE = "planned.json"  # a study's run ids, in its runs folder (`transferlab plan --out data/runs`)


def planned_by_study(params: Params) -> dict[str, list[Run]]:
    """The runs params.yaml asks for, per study with runs (STUDIES)."""
    by_study: dict[str, list[Run]] = {study: [] for study in STUDIES}
    for run in planned_all(params):
        by_study[study_of(run)].append(run)
    return by_study


def input_run(run: Run) -> Run | None:
    """The trained run whose net this run starts from (None: none, or a pretrained net)."""
    if isinstance(run, RunSpec):
        return run.source_base
    if isinstance(run, BinaryRun):
        return run.source if run.frozen is not None else None
    if isinstance(run, (SizeRun, AllClassesControl)):
        return None
    return RunSpec(run.split, "A", replicate=run.replicate) if run.source == "A" else None


# Where each kind of run keeps its net: A' nets and the all-class control beside the base nets
# (the features stage depends on data/models alone).
MODEL_FOLDERS = {RunSpec: "models", AllClassesControl: "models", BinaryRun: "models"}
MODEL_FOLDERS |= {StrategyRun: "strategies", SizeRun: "size"}
STUDY_OF = {RunSpec: "grid", AllClassesControl: "grid", BinaryRun: "binary", StrategyRun: "strategies", SizeRun: "size"}
STUDIES = tuple(STUDY_OF.values())  # the studies with runs of their own (each a report stage)


def study_of(run: Run) -> str:
    """The study a run belongs to (its report stage): grid, binary, strategies or size."""
    return STUDY_OF[type(run)]


def study_settings(run: Run) -> str:
    """Which study's training settings a run uses (data/settings/<study>.json)."""
    if isinstance(run, RunSpec):
        return "base" if run.is_base else "transfer"
    if isinstance(run, BinaryRun):
        return "base" if run.frozen is None else "binary"  # an A' net trains as baseA does
    if isinstance(run, AllClassesControl):
        return "transfer"  # n = 0 too: the control's own base trains as the controls do
    return "size" if isinstance(run, SizeRun) else "strategies"


@dataclass(frozen=True)
class Layout:
    """Every path of the pipeline under the project root, derived from run ids (dvc.yaml spells
    the same paths; tests/test_layout.py checks that the two agree for every planned run)."""

    root: Path = Path(".")
    pretrained: str | None = None  # the weight name of the pretrained source (pretrained.weights)

    @classmethod
    def of(cls, params: Params, root: Path = Path(".")) -> Layout:
        """The layout of the project at `root` that `params` configures."""
        return cls(root, params.pretrained.weights[0] if params.pretrained.weights else None)

    @property
    def dataset(self) -> Path:
        return self.root / "data/prepared/dataset.pt"

    @property
    def source_checkpoint(self) -> Path:
        """A net trained elsewhere, the source of pretrained.weights: [checkpoint]."""
        return self.root / "data/sources/checkpoint.pt"

    def split_file(self, split: str) -> Path:
        return self.root / "data/splits" / SPLIT_FILE.format(split=split)

    def settings(self, study: str) -> Path:
        return self.root / "data/settings" / f"{study}.json"

    def model(self, run: Run) -> Path:
        return self.root / "data" / MODEL_FOLDERS[type(run)] / f"{run}.pt"

    def runs_of(self, study: str) -> Path:
        """The folder of a study's run folders: its report stage depends on it alone."""
        return self.root / "data/runs" / study

    def report_dir(self, study: str) -> Path:
        """A study's report: results.parquet (and .csv) and metrics.json (for dvc exp show)."""
        return self.root / "reports" / study

    def planned(self, study: str) -> Path:
        """The run ids params.yaml asks of a study (written by the plan stage, read by its report
        stage): in the study's runs folder, which it keeps present when the study has no runs."""
        return self.runs_of(study) / PLANNED_FILE

    def read_planned(self, study: str) -> list[Run]:
        """The runs of the study's plan file."""
        path = self.planned(study)
        if not path.is_file():
            raise MissingRunError(f"{path} is missing: `transferlab plan --out data/runs` (the plan stage) writes it")
        return [parse_run(run_id) for run_id in json.loads(path.read_text())["runs"]]

    def plot_data(self, study: str) -> Path:
        """A study's plot tables (<name>.csv), drawn by dvc.yaml's `plots:` (dvc plots show/diff)."""
        return self.report_dir(study) / "plots"

    @property
    def figures(self) -> Path:
        return self.root / "reports/figures"

    @property
    def tables(self) -> Path:
        return self.root / "reports/tables"

    def pretrained_model(self) -> Path:
        return self.root / "data/models/pretrained" / f"{self.pretrained}.pt"

    def source_model(self, run: Run) -> Path | None:
        """The checkpoint a run starts from: a base net, an A' net, baseA, the pretrained net, or none."""
        if isinstance(run, (RunSpec, StrategyRun)) and run.source == "P":  # (a BinaryRun's source is its A' net)
            return self.pretrained_model()
        source = input_run(run)
        return self.model(source) if source else None

    def inputs(self, run: Run) -> list[Path]:
        source = self.source_model(run)
        return [
            self.dataset,
            *([] if isinstance(run, (SizeRun, AllClassesControl)) else [self.split_file(run.split)]),  # (every class)
            self.settings(study_settings(run)),
            *([source] if source else []),
        ]

    def outputs(self, run: Run) -> list[Path]:
        return [self.model(run), self.run_dir(run)]

    def run_dir(self, run: Run) -> Path:
        return self.runs_of(study_of(run)) / str(run)

    def metrics(self, run: Run) -> Path:
        return self.run_dir(run) / "metrics.json"

    def analysis(self, split: str, replicate: int) -> Path:
        return self.root / "data/analysis" / SPLIT_NAME.format(split=split) / REPLICATE_FILE.format(replicate=replicate)

    def checkpoint(self, run_id: Run | str) -> Path:
        # Outside every DVC/Snakemake output: engines delete a stage's outputs before
        # running it, and the in-progress checkpoint must survive that to resume.
        return self.root / "data/checkpoints" / f"{run_id}.pt"
