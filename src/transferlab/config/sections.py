"""The sections of params.yaml as pydantic models (extra keys forbidden), and the training
settings that every study shares (`train`) with each study's overrides."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transferlab.models import check_model

Share = Annotated[float, Field(gt=0, lt=1)]  # a share of classes or of each class's images
SplitId = int | str  # a seed (split.method), "mn"/"nm", "classes", "cross" or "all"
NAMED_SPLITS = ("mn", "nm", "classes", "cross", "all")
# Named splits whose halves differ by design: man-made/natural either way, a hand-made class
# list, two data sets (figures and tables keep them apart from random splits).
DISSIMILAR_SPLITS = ("mn", "nm", "classes", "cross")
DatasetName = Literal[
    "synthetic",
    "cifar10",
    "cifar100",
    "svhn",
    "mnist",
    "fashion_mnist",
    "imagenet",
    "imagenet100",
    "imagefolder",
    "arrays",
    "caltech101",
]
FOLDER_DATASETS = ("imagenet", "imagenet100", "imagefolder", "arrays")  # in data.image_folder; may have a val part
IMAGE_FILE_DATASETS = ("imagenet", "imagenet100", "imagefolder", "caltech101")  # storage "files" can stream them
STRATEGY_NAMES = (
    "classifier",
    "extra_fc",
    "finetune_top",
    "finetune_all",
    "best_linear",
)  # studies/strategies/ builds each
# Class counts known before preparing (imagefolder: whatever the folder holds).
KNOWN_CLASS_COUNTS = {
    "cifar10": 10,
    "cifar100": 100,
    "svhn": 10,
    "mnist": 10,
    "fashion_mnist": 10,
    "imagenet": 1000,
    "imagenet100": 100,
    "caltech101": 101,
}


def unique(values: list, minimum: int | None = None) -> list:
    """The check every list setting shares: entries unique (compared as text, so that 1 and
    "1" are one entry), and integer entries at least `minimum`."""
    if len({str(v) for v in values}) != len(values):
        raise ValueError("entries must be unique")
    if minimum is not None and any(isinstance(v, int) and not isinstance(v, bool) and v < minimum for v in values):
        raise ValueError(f"entries must be >= {minimum}")
    return values


class ConfigError(ValueError):
    """A bad params.yaml: the message is one line naming the key, the value and what is allowed."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticConfig(Strict):
    num_classes: int = Field(20, ge=4, le=1000, description="classes generated")
    train_per_class: int = Field(150, ge=2)
    test_per_class: int = Field(50, ge=1)


# Data settings that change how fast the data is read or fetched, never what it holds: left
# out of the prepared data set, so that changing one leaves its bytes (and every run below) as they were.
RUNTIME_KEYS = ("workers", "download", "verify")


class DataConfig(Strict):
    dataset: DatasetName = "synthetic"
    b_dataset: DatasetName | None = Field(
        None, description="cross-data-set tasks: B from this data set (split id 'cross')"
    )
    root: str = Field("data/raw", description="folder of the torchvision data sets' original files (download target)")
    image_folder: str | None = Field(
        None, description="folder of imagenet / imagenet100 / imagefolder images, or of arrays' .npy files"
    )
    download: bool = False
    verify: bool = Field(True, description="check the published MD5 sums of the original files")
    image_size: int = Field(16, ge=16, le=256, description="every image is resized to this (pixels per side)")
    max_train_per_class: int | None = Field(None, ge=1, description="keep at most this many training images per class")
    max_test_per_class: int | None = Field(None, ge=1)
    test_fraction: Share = Field(0.2, description="imagefolder without a test/ folder: share held out per class")
    train_per_class: int | None = Field(
        None,
        ge=1,
        description="caltech101 (and imagefolder without a test/ folder): this many training images per class, the rest for testing (caltech101 with null: 30)",
    )
    val_folder: bool = Field(
        False,
        description="folder data sets: a validation part read from val/ beside train/ and test/ (arrays: val_images.npy and val_labels.npy); every run validates on it (val_fraction then holds nothing out)",
    )
    workers: int = Field(4, ge=0, description="image-decoding worker processes (folder data sets)")
    outside_links: bool = Field(
        False,
        description="image folders: follow a link to a file outside the folder (refused by default: its image would enter the prepared data set, which others may read)",
    )
    storage: Literal["tensor", "files"] = Field(
        "tensor",
        description="tensor: decode once into one uint8 tensor (a resized cache); files: decode from the files every epoch (folder data sets)",
    )
    seed: int = Field(0, ge=0, description="synthetic generation and per-class subsets")
    synthetic: SyntheticConfig = SyntheticConfig()

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.b_dataset == self.dataset:
            raise _KeyError(
                "data.b_dataset", self.b_dataset, f"a data set other than data.dataset ({self.dataset}), or null"
            )
        folders = [d for d in (self.dataset, self.b_dataset) if d in FOLDER_DATASETS]
        if len(folders) > 1:
            raise _KeyError(
                "data.b_dataset",
                self.b_dataset,
                f"at most one folder data set ({', '.join(FOLDER_DATASETS)}) per task pair",
            )
        if folders and not self.image_folder:
            raise _KeyError("data.image_folder", self.image_folder, f"the folder that holds the {folders[0]} images")
        if self.val_folder and (self.dataset not in FOLDER_DATASETS or self.b_dataset):
            raise _KeyError(
                "data.val_folder",
                True,
                f"false, or true with a folder data set ({', '.join(FOLDER_DATASETS)}) and no data.b_dataset",
            )
        if self.storage == "files" and (self.dataset not in IMAGE_FILE_DATASETS or self.b_dataset):
            raise _KeyError(
                "data.storage",
                self.storage,
                f"tensor, or files with an image file data set ({', '.join(IMAGE_FILE_DATASETS)}) and no data.b_dataset",
            )
        return self

    def datasets(self) -> list[str]:
        """The data sets to prepare: one, or A's and B's."""
        return [self.dataset] + ([self.b_dataset] if self.b_dataset else [])

    def num_classes(self) -> int | None:
        """Classes of the prepared data set, if known before preparing it."""
        counts = [
            self.synthetic.num_classes if d == "synthetic" else KNOWN_CLASS_COUNTS.get(d) for d in self.datasets()
        ]
        return None if None in counts else sum(counts)


class SplitConfig(Strict):
    method: Literal["yosinski2014", "random"] = Field(
        "yosinski2014", description="how integer split ids (seeds) split the classes"
    )
    fraction: Share = Field(0.5, description="share of classes in half A (random splits)")
    classes_a: list[str | int] = Field(
        default_factory=list, description="split id 'classes': A's classes (names or indices)"
    )
    classes_b: list[str | int] = Field(
        default_factory=list, description="split id 'classes': B's classes (empty: all others)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SplitConfig:
        if self.method == "yosinski2014" and self.fraction != 0.5:
            raise _KeyError(
                "split.fraction",
                self.fraction,
                "0.5 with split.method yosinski2014 (the paper's halves); use method random for other fractions",
            )
        both = set(map(str, self.classes_a)) & set(map(str, self.classes_b))
        if both:
            raise _KeyError(
                "split.classes_b", sorted(both)[0], "classes not in split.classes_a (a class cannot be in both halves)"
            )
        return self

    @field_validator("classes_a", "classes_b")
    @classmethod
    def _unique(cls, values: list) -> list:
        return unique(values)


class ModelConfig(Strict):
    name: str = "convnet8"
    width: float = Field(0.125, gt=0, le=4)
    dropout: float = Field(0.5, ge=0, lt=1)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        try:
            check_model(name)
        except ValueError as err:
            raise ValueError(str(err).replace(f"unknown model {name!r}", "unknown model")) from None
        return name

    def options(self) -> dict[str, Any]:
        """Keyword options of `create_model` besides the class count."""
        return {"width": self.width, "dropout": self.dropout}


class TrainConfig(Strict):
    epochs: int = Field(40, ge=1)
    iterations: int | None = Field(
        None,
        ge=1,
        description="a budget in optimiser steps, as a study that gave iterations wrote it (epochs then unused)",
    )
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    step_epochs: int = Field(10, ge=1, description="with schedule step: divide lr by 10 every step_epochs")
    step_iterations: int | None = Field(
        None,
        ge=1,
        description="with schedule step: divide lr by 10 every step_iterations steps (instead of step_epochs)",
    )
    warmup_epochs: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: bool = True
    crop_padding: int = Field(4, ge=0)
    evals_per_epoch: int = Field(1, ge=1)
    best_k: int = Field(3, ge=1, description="the paper's statistic: mean of the k best evaluations")
    val_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of each class's training images held out for validation (a data set with a validation part, data.val_folder, uses that instead)",
    )
    patience: int = Field(0, ge=0, description="early stopping: evaluations without a better validation top-1 (0: off)")
    layer_lr_factors: dict[str, float] = Field(
        default_factory=dict, description="lr factor per unit name, e.g. {conv1: 0.1}"
    )
    compile: bool = Field(False, description="torch.compile the model (pays off on CUDA for long runs)")

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.step_iterations is not None and self.schedule != "step":
            raise _KeyError("step_iterations", self.step_iterations, "null unless schedule is step", relative=True)
        if self.iterations is None and self.warmup_epochs >= self.epochs:
            raise _KeyError("warmup_epochs", self.warmup_epochs, f"a value below epochs ({self.epochs})", relative=True)
        if any(f < 0 for f in self.layer_lr_factors.values()):
            raise ValueError("layer_lr_factors must be >= 0")
        return self


def _overrides_model() -> type[BaseModel]:
    """TrainConfig with every key optional and unset by default: a study's deviations from `train`."""
    from pydantic import create_model

    fields = {name: (f.annotation | None, None) for name, f in TrainConfig.model_fields.items()}
    return create_model(
        "TrainOverrides", __base__=Strict, __doc__="Keys of `train` that one study sets differently.", **fields
    )


TrainOverrides = _overrides_model()
TRAIN_KEYS = tuple(TrainConfig.model_fields)


def merged(shared: TrainConfig, overrides: BaseModel, section: str) -> TrainConfig:
    """The effective training settings of a study: `train` with the study's overrides applied.

    Errors name the key where the offending value was written (`transfer.epochs` or `train.epochs`)."""
    changed = overrides.model_dump(include=set(TRAIN_KEYS), exclude_none=True)  # null: as in `train`
    # A study that gives its budget in epochs (or its schedule's steps in epochs) means epochs,
    # even where `train` gave iterations.
    for epochs, iterations in (("epochs", "iterations"), ("step_epochs", "step_iterations")):
        if epochs in changed and iterations not in changed:
            changed[iterations] = None
    try:
        return TrainConfig.model_validate({**shared.model_dump(), **changed})
    except ValidationError as err:
        e = err.errors()[0]
        ctx_error = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _KeyError):
            name, value, allowed, message = ctx_error.key, ctx_error.value, ctx_error.allowed, None
        else:
            name, value, allowed, message = str(e["loc"][0]), e.get("input"), "", e["msg"]
        raise _KeyError(f"{section if name in changed else 'train'}.{name}", value, allowed, message=message) from None


class TransferConfig(TrainOverrides):
    """The treatments BnB, AnB, BnB+, AnB+ and the random control; training keys override `train`."""

    layers: list[int] = Field(default_factory=lambda: list(range(1, 8)))  # []: no treatments
    targets: list[Literal["A", "B"]] = Field(default_factory=lambda: ["B"], min_length=1)
    finetune_lr_factor: float = Field(1.0, ge=0, description="lr factor of copied layers in the + treatments")
    control_all_classes: list[int] = Field(
        default_factory=list,
        description="the paper's random control: n at which a net on every class keeps its first n units random and "
        "frozen, against the net on every class with none random (0, which the list must include); [] runs none",
    )

    @field_validator("layers", "targets")
    @classmethod
    def _unique(cls, values: list) -> list:
        return unique(values)

    @field_validator("control_all_classes")
    @classmethod
    def _with_its_base(cls, values: list[int]) -> list[int]:
        unique(values, minimum=0)
        if values and 0 not in values:
            raise ValueError("the list must include 0: the net on every class with no random units, its base")
        return values


class BinaryConfig(Strict):
    """The binary-partition study: auxiliary 2-way heads on A (A'), then fine-tuning on B."""

    betas: list[float] = Field(
        default_factory=lambda: [0.0, 0.5],
        description="loss weight of the binary heads; 0 is the paired control ([]: no binary study)",
    )
    heads: list[int] = Field(
        default_factory=lambda: [1],
        min_length=1,
        description="the sweep of binary-head counts (each head its own random partition of A's classes); part of the run ids",
    )
    partition_seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    equal_halves: bool = Field(True, description="partitions into equal halves (an odd class count is refused)")
    frozen_units: list[int] = Field(
        default_factory=lambda: [0],
        min_length=1,
        description="fine-tuning on B with the first k units frozen (0: none)",
    )
    body_lr_factor: float = Field(0.1, ge=0, description="lr factor of the transferred units when fine-tuning on B")
    # Early stopping on a validation part of B, as the study did; the rest as in `train`.
    finetune: TrainOverrides = TrainOverrides(val_fraction=0.1, patience=2)

    @field_validator("betas", mode="before")
    @classmethod
    def _spelled_as_floats(cls, betas: Any) -> Any:
        for b in betas if isinstance(betas, list) else []:
            if isinstance(b, int) and not isinstance(b, bool):
                raise ValueError(f"entry {b} must be written with a decimal point ({b}.0): DVC names run folders by it")
        return betas

    @field_validator("betas")
    @classmethod
    def _betas(cls, betas: list[float]) -> list[float]:
        for b in betas:
            if not 0 <= b <= 1:
                raise ValueError(f"entry {b} is outside [0, 1]")
        unique(betas)
        if betas and 0 not in betas:
            raise ValueError("the list must include 0: the plain net on A, the paired control of every beta")
        return betas

    @field_validator("partition_seeds", "frozen_units")
    @classmethod
    def _unique_nonnegative(cls, values: list[int]) -> list[int]:
        return unique(values, minimum=0)

    @field_validator("heads")
    @classmethod
    def _unique_positive(cls, values: list[int]) -> list[int]:
        return unique(values, minimum=1)


class AnalysisConfig(Strict):
    """Per-layer analysis of baseA and baseB: linear probes, CKA, transferability estimates."""

    probe_c: float = Field(
        10.0, gt=0, description="inverse regularisation of the linear probes (L2-normalised features)"
    )
    augment_copies: int = Field(
        0,
        ge=0,
        description="CNNaug: randomly cropped and flipped copies of B's training images added before extraction",
    )
    rotate_degrees: float = Field(
        0.0, ge=0, le=180, description="CNNaug: each copy also rotated by a random angle in [-d, d] degrees"
    )
    power: float = Field(
        1.0,
        gt=0,
        description="signed power transform sign(x)|x|^power of the features before the probes' L2 normalisation (1: none)",
    )
    max_train_per_class: int | None = Field(
        100, ge=2, description="training images per class used for probes and estimates (null: all)"
    )
    cka_batch_size: int = Field(500, ge=4, description="minibatch of the unbiased CKA estimator")
    binary_sources: bool = Field(True, description="also analyse the binary study's A' nets (beta > 0)")
    decaf_units: list[int] = Field(
        default_factory=lambda: [5, 6, 7],
        description="units n of the DeCAF table (reports/tables/decaf.md): their probes are also fitted with dropout on the features",
    )
    dropout_copies: int = Field(
        4,
        ge=1,
        description="DeCAF's dropout: copies of the training features, each with a fresh half of its components dropped",
    )
    data_draws: list[int] = Field(
        default_factory=lambda: [0],
        min_length=1,
        description="draws of B's training images (max_train_per_class of each class, drawn anew per entry; the "
        "first is the one every probe and estimate uses): the DeCAF table's values per split, replicate and draw",
    )

    @field_validator("decaf_units")
    @classmethod
    def _units(cls, values: list[int]) -> list[int]:
        return unique(values, minimum=1)

    @field_validator("data_draws")
    @classmethod
    def _draws(cls, values: list[int]) -> list[int]:
        return unique(values, minimum=0)

    @model_validator(mode="after")
    def _drawable(self) -> AnalysisConfig:
        if len(self.data_draws) > 1 and self.max_train_per_class is None:
            raise _KeyError(
                "data_draws",
                self.data_draws,
                "one draw while analysis.max_train_per_class is null (every draw would hold all of B's training images)",
                relative=True,
            )
        if len(self.data_draws) > 1 and not self.decaf_units:
            raise _KeyError(
                "data_draws",
                self.data_draws,
                "one draw while analysis.decaf_units is [] (no DeCAF table)",
                relative=True,
            )
        return self


class PretrainedConfig(Strict):
    """Source nets with published ImageNet weights (torchvision's, timm's), or a net trained
    elsewhere (data/sources/checkpoint.pt), beside or instead of trained base nets."""

    weights: list[str] = Field(
        default_factory=list,
        max_length=1,
        description="[] or one weight name of model.name: torchvision's (e.g. [IMAGENET1K_V1], [DEFAULT]) or, for mobilenet_v1, timm's [ra4_e3600_r224_in1k]; or [checkpoint] for any model: data/sources/checkpoint.pt, a net of model.name trained elsewhere",
    )
    cache: str | None = Field(
        None, description="folder of the weight files (null: torchvision's cache, $TORCH_HOME/hub/checkpoints)"
    )


class StrategiesConfig(Strict):
    """Which strategy when (by data volume and similarity), and baseA cut at unit n, on B."""

    names: list[Literal[STRATEGY_NAMES]] = Field(
        default_factory=lambda: list(STRATEGY_NAMES), description="strategies to run ([]: none)"
    )
    images_per_class: list[int | Literal["all"]] = Field(
        default_factory=lambda: [10, "all"], description="B's training images per class (nested subsets)"
    )
    baselines: list[Literal["scratch"]] = Field(
        default_factory=lambda: ["scratch"],
        description="nets that transfer nothing, beside the strategies: scratch (random initialisation, every "
        "unit trained on B at each images_per_class with strategies.train) ([]: none)",
    )
    top_units: int = Field(2, ge=1, description="finetune_top / finetune_all: the top k units at top_lr_factor")
    top_lr_factor: float = Field(0.1, ge=0)
    lower_lr_factor: float = Field(0.01, ge=0, description="finetune_all: the units below the top k")
    extra_fc: list[int] = Field(
        default_factory=lambda: [256],
        min_length=1,
        max_length=2,
        description="widths of the new fully connected layers of extra_fc",
    )
    cut_layers: list[int] = Field(
        default_factory=lambda: [2, 4, 7], description="cut study: keep units 1..n of baseA ([]: none)"
    )
    latency_batch: int = Field(64, ge=1)
    latency_repeats: int = Field(20, ge=3)
    linear_c: float = Field(10.0, gt=0, description="best_linear: inverse regularisation of its logistic regressions")
    linear_val_fraction: Share = Field(
        0.2,
        description="best_linear: share of each class's training images that picks the unit (without data.val_folder)",
    )
    train: TrainOverrides = TrainOverrides(batch_size=64)  # smaller batches: as few as 10 images per class

    @field_validator("names", "images_per_class", "cut_layers", "baselines")
    @classmethod
    def _unique(cls, values: list) -> list:
        return unique(values, minimum=1)


class SizeConfig(Strict):
    """The dataset-size study: base nets on every class, trained on k images per class."""

    images_per_class: list[int] = Field(
        default_factory=list, description="training images per class, one net each on every class ([]: none)"
    )
    budget: Literal["same_steps", "epochs"] = Field(
        "same_steps",
        description="same_steps: every net the full-data net's optimiser steps (as the paper's), a net on "
        "fewer images repeating them | epochs: the epochs of size.train each (fewer images, fewer steps)",
    )
    train: TrainOverrides = TrainOverrides()

    @field_validator("images_per_class")
    @classmethod
    def _sizes(cls, values: list[int]) -> list[int]:
        return unique(values, minimum=1)


class _KeyError(ValueError):
    """Raised inside validators to name a key other than the one being validated
    (`relative`: a key of the model being validated, to be prefixed with its location)."""

    def __init__(self, key: str, value: Any, allowed: str, relative: bool = False, message: str | None = None) -> None:
        self.key, self.value, self.allowed, self.relative = key, value, allowed, relative
        super().__init__(
            f"{key}: found {value!r}, {message}" if message else f"{key}: found {value!r}, allowed: {allowed}"
        )
