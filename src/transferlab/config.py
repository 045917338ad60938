"""Pydantic models of params.yaml: the one experiment configuration.

Library code never reads params.yaml; the CLI loads it once with `load_params` and
passes these typed objects down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SplitId = int | str  # a seed of random halves, or "mn" / "nm" (man-made vs natural)
DISSIMILAR_SPLITS = ("mn", "nm")


class ConfigError(ValueError):
    """A bad params.yaml: the message is one line naming the key, the value and what is allowed."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Strict):
    dataset: Literal["synthetic"] = "synthetic"
    num_classes: int = Field(20, ge=4, le=1000, description="classes of the synthetic set")
    image_size: int = Field(32, ge=16, le=256)
    train_per_class: int = Field(150, ge=2)
    test_per_class: int = Field(50, ge=1)
    seed: int = Field(0, ge=0)


class SplitConfig(Strict):
    fraction: float = Field(0.5, gt=0, lt=1, description="share of classes in half A (random splits)")


class ModelConfig(Strict):
    name: str = "convnet8"
    width: float = Field(0.125, gt=0, le=4)
    dropout: float = Field(0.5, ge=0, lt=1)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from transferlab.models import list_models

        if name not in list_models():
            raise ValueError(f"unknown model, allowed: {', '.join(list_models())}")
        return name

    def options(self) -> dict[str, Any]:
        """Keyword options of `create_model` besides the class count."""
        return {"width": self.width, "dropout": self.dropout}


class TrainConfig(Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    step_epochs: int = Field(10, ge=1, description="with schedule step: divide lr by 10 every step_epochs")
    warmup_epochs: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: bool = True
    crop_padding: int = Field(4, ge=0)
    evals_per_epoch: int = Field(1, ge=1)
    best_k: int = Field(3, ge=1, description="the paper's statistic: mean of the k best evaluations")
    val_fraction: float = Field(0.0, ge=0, lt=1, description="share of each class's training images held out for validation")
    patience: int = Field(0, ge=0, description="early stopping: evaluations without a better validation top-1 (0: off)")
    layer_lr_factors: dict[str, float] = Field(default_factory=dict, description="lr factor per unit name, e.g. {conv1: 0.1}")
    compile: bool = Field(False, description="torch.compile the model (pays off on CUDA for long runs)")

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be below epochs={self.epochs}")
        if self.patience and not self.val_fraction:
            raise ValueError(f"patience={self.patience} needs a validation part: set val_fraction > 0")
        if any(f < 0 for f in self.layer_lr_factors.values()):
            raise ValueError("layer_lr_factors must be >= 0")
        return self


class TransferConfig(TrainConfig):
    epochs: int = Field(5, ge=1)
    layers: list[int] = Field(default_factory=lambda: list(range(1, 8)), min_length=1)
    targets: list[Literal["A", "B"]] = Field(default_factory=lambda: ["B"], min_length=1)
    finetune_lr_factor: float = Field(1.0, ge=0, description="lr factor of copied layers in the + treatments")

    @field_validator("layers", "targets")
    @classmethod
    def _unique(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError("entries must be unique")
        return values


class Params(Strict):
    seed: int = Field(0, ge=0)
    replicates: list[int] = Field(default_factory=lambda: [0], min_length=1)
    data: DataConfig = DataConfig()
    splits: list[SplitId] = Field(default_factory=lambda: [0], min_length=1)
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    base: TrainConfig = TrainConfig()
    transfer: TransferConfig = TransferConfig()

    @field_validator("replicates", "splits")
    @classmethod
    def _unique_ids(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError("entries must be unique")
        for v in values:
            if (isinstance(v, int) and v < 0) or (isinstance(v, str) and v not in DISSIMILAR_SPLITS):
                raise ValueError(f"entry {v!r} is not allowed: use integers >= 0 (random seeds) or 'mn'/'nm' (splits only)")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> "Params":
        from transferlab.models import model_units

        units = model_units(self.model.name, **self.model.options())
        depth = len(units)
        for section in ("base", "transfer"):
            for name in getattr(self, section).layer_lr_factors:
                if name not in units:
                    raise _KeyError(f"{section}.layer_lr_factors.{name}", name, f"unit names of {self.model.name}: {', '.join(units)}")
        for i, n in enumerate(self.transfer.layers):
            if not 1 <= n <= depth:
                raise _KeyError(f"transfer.layers[{i}]", n, f"1..{depth} for {self.model.name} ({depth} transferable layers)")
        size_a = round(self.data.num_classes * self.split.fraction)
        if not 1 <= size_a <= self.data.num_classes - 1:
            raise _KeyError("split.fraction", self.split.fraction, f"a fraction that leaves both halves of {self.data.num_classes} classes non-empty")
        return self


class _KeyError(ValueError):
    """Raised inside validators to name a key other than the one being validated."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"{key}: found {value!r}, allowed: {allowed}")


def _allowed_keys(loc: tuple) -> list[str]:
    """Field names of the model that owns the key at `loc` (for unknown-key messages)."""
    model: type[BaseModel] = Params
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def _format(err: ValidationError) -> str:
    """The first validation error as one line: key, value found, what is allowed."""
    e = err.errors()[0]
    ctx_error = (e.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _KeyError):
        return str(ctx_error)
    loc = e["loc"]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"
    if e["type"] == "extra_forbidden":
        return f"{key}: unknown key, allowed here: {', '.join(_allowed_keys(loc))}"
    msg = e["msg"].removeprefix("Value error, ")
    return f"{key}: found {e.get('input')!r}, {msg}"


def parse_params(raw: Any) -> Params:
    """Validate a parsed params mapping; raise ConfigError with a one-line message."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params: expected a mapping of keys at the top level, found {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format(err)) from None


def load_params(path: Path) -> Params:
    """Read and validate params.yaml."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such parameter file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    try:
        return parse_params(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
