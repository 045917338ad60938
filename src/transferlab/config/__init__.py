"""Pydantic models of params.yaml: the one experiment configuration.

Library code never reads params.yaml; the CLI loads it once with `load_params` and
passes these typed objects down.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from transferlab.config.sections import (  # noqa: F401 (the package's public names)
    DISSIMILAR_SPLITS,
    FOLDER_DATASETS,
    KNOWN_CLASS_COUNTS,
    NAMED_SPLITS,
    TRAIN_KEYS,
    AnalysisConfig,
    BinaryConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    PretrainedConfig,
    SizeConfig,
    SplitConfig,
    SplitId,
    StrategiesConfig,
    Strict,
    SyntheticConfig,
    TrainConfig,
    TrainOverrides,
    TransferConfig,
    _KeyError,
    merged,
    unique,
)
from transferlab.models import MIN_IMAGE_SIZE, model_units, weight_names  # static tables, without torch

# Where each study's training overrides live in params.yaml.
STUDY_SECTIONS = {
    "base": "base",
    "transfer": "transfer",
    "binary": "binary.finetune",
    "strategies": "strategies.train",
    "size": "size.train",
}


class Params(Strict):
    seed: int = Field(0, ge=0)
    # CPU threads of every computing command: part of a run's settings, because sums inside
    # convolutions differ in the last bits with another count (and training amplifies that)
    threads: int = Field(1, ge=1)
    replicates: list[int] = Field(default_factory=lambda: [0], min_length=1)
    # The base nets trained per split and replicate ([]: none, when only a pretrained net is analysed)
    base_nets: list[Literal["A", "B"]] = Field(default_factory=lambda: ["A", "B"])
    data: DataConfig = DataConfig()
    splits: list[SplitId] = Field(default_factory=lambda: [0], min_length=1)
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()  # shared by every net (the paper: one schedule for all)
    base: TrainOverrides = TrainOverrides()
    transfer: TransferConfig = TransferConfig()
    binary: BinaryConfig = BinaryConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    pretrained: PretrainedConfig = PretrainedConfig()
    strategies: StrategiesConfig = StrategiesConfig()
    size: SizeConfig = SizeConfig()

    def training(self, study: str) -> TrainConfig:
        """Effective training settings of a study ("base", "transfer", "binary", "strategies", "size")."""
        section = STUDY_SECTIONS[study]
        return merged(self.train, self._overrides(section), section)

    def _overrides(self, section: str) -> BaseModel:
        return {
            "base": self.base,
            "transfer": self.transfer,
            "binary.finetune": self.binary.finetune,
            "strategies.train": self.strategies.train,
            "size.train": self.size.train,
        }[section]

    def settings(self) -> dict[str, dict]:
        """Every study's effective training settings, as written to data/settings/<study>.json."""
        return {study: self.training(study).model_dump(mode="json") for study in STUDY_SECTIONS}

    @field_validator("replicates", "splits")
    @classmethod
    def _unique_ids(cls, values: list) -> list:
        unique(values)
        for v in values:
            if (isinstance(v, int) and v < 0) or (isinstance(v, str) and v not in NAMED_SPLITS):
                raise ValueError(
                    f"entry {v!r} is not allowed: use integers >= 0 (seeds) or, for splits, {', '.join(map(repr, NAMED_SPLITS))}"
                )
        return values

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        units = model_units(self.model.name, **self.model.options())
        depth = len(units)
        smallest = MIN_IMAGE_SIZE.get(self.model.name, 0)
        if self.data.image_size < smallest:
            raise _KeyError("data.image_size", self.data.image_size, f">= {smallest} for {self.model.name}")
        for section, cfg in {
            "train": self.train,
            **{s: self.training(study) for study, s in STUDY_SECTIONS.items()},
        }.items():
            if cfg.patience and not cfg.val_fraction and not self.data.val_folder:
                written = section if section == "train" or self._overrides(section).patience is not None else "train"
                raise _KeyError(
                    f"{written}.patience",
                    cfg.patience,
                    "0, or a validation part: val_fraction > 0, or data.val_folder: true",
                )
            for name in cfg.layer_lr_factors:
                if name not in units:
                    raise _KeyError(
                        f"{section}.layer_lr_factors.{name}",
                        name,
                        f"unit names of {self.model.name}: {', '.join(units)}",
                    )
        within_depth = _depth_check(self.model.name, depth)
        within_depth("transfer.layers", self.transfer.layers, lowest=1)
        within_depth("transfer.control_all_classes", self.transfer.control_all_classes, lowest=0)
        if self.pretrained.weights:
            allowed = weight_names(self.model.name)
            if self.pretrained.weights[0] not in allowed:
                what = f"one of {', '.join(allowed)} for {self.model.name}"
                raise _KeyError("pretrained.weights[0]", self.pretrained.weights[0], what)
        self._without_base_nets()
        within_depth("analysis.decaf_units", self.analysis.decaf_units, lowest=1)
        within_depth("strategies.cut_layers", self.strategies.cut_layers, lowest=1)
        within_depth("strategies.top_units", self.strategies.top_units, lowest=1)
        within_depth("binary.frozen_units", self.binary.frozen_units, lowest=0)
        classes = self.data.num_classes()
        seeds = any(isinstance(s, int) for s in self.splits)
        if seeds and classes and not 1 <= round(classes * self.split.fraction) <= classes - 1:
            raise _KeyError(
                "split.fraction",
                self.split.fraction,
                f"a fraction that leaves both halves of {classes} classes non-empty",
            )
        if ("cross" in self.splits) != bool(self.data.b_dataset):
            found = self.splits if self.data.b_dataset else "cross"
            raise _KeyError(
                "splits",
                found,
                "['cross'] exactly when data.b_dataset is set (A from data.dataset, B from data.b_dataset)",
            )
        if self.data.b_dataset and len(self.splits) > 1:
            raise _KeyError("splits", self.splits, "['cross'] alone when data.b_dataset is set")
        if self.binary.equal_halves and classes and seeds:
            size_a = classes // 2 if self.split.method == "yosinski2014" else round(classes * self.split.fraction)
            if size_a % 2:
                raise _KeyError(
                    "binary.equal_halves",
                    True,
                    f"false, or an even class count in A (A has {size_a} classes, which cannot be halved)",
                )
        if "classes" in self.splits and not self.split.classes_a:
            raise _KeyError("split.classes_a", [], "a non-empty list of class names or indices for split id 'classes'")
        return self

    def _without_base_nets(self) -> None:
        """base_nets is [A, B], or [] when nothing starts from them and a pretrained net is there
        to analyse (the analysis-only configuration: no net is trained)."""
        if self.base_nets not in (["A", "B"], []):
            raise _KeyError(
                "base_nets", self.base_nets, "[A, B], or [] (no base nets: analysis of a pretrained net only)"
            )
        if self.base_nets:
            return
        users = {
            "transfer.layers": self.transfer.layers,  # every treatment copies from a base net or is compared with one
            "binary.betas": self.binary.betas,  # beta = 0 is baseA's training
            "strategies.names": self.strategies.names,  # from baseA (and from the pretrained net beside it)
            "strategies.cut_layers": self.strategies.cut_layers,
        }
        for key, value in users.items():
            if value:
                raise _KeyError(key, value, "[] when base_nets is [] (it starts from the base nets)")
        if not self.pretrained.weights:
            raise _KeyError("base_nets", [], "[A, B], or [] with pretrained.weights naming a net to analyse")


def _depth_check(model: str, depth: int):
    """A check that a unit count (or each of a list of them) lies in lowest..depth, the
    model's transferable units: one message for every key that counts units."""

    def check(key: str, values: int | list[int], lowest: int) -> None:
        for i, n in enumerate(values) if isinstance(values, list) else [(None, values)]:
            if not lowest <= n <= depth:
                where = key if i is None else f"{key}[{i}]"
                raise _KeyError(where, n, f"{lowest}..{depth} for {model} ({depth} transferable units)")

    return check


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
    loc = e["loc"]
    if isinstance(ctx_error, _KeyError) and ctx_error.relative:
        prefix = "".join(f"{p}." for p in loc if not isinstance(p, int))
        return str(_KeyError(prefix + ctx_error.key, ctx_error.value, ctx_error.allowed))
    if isinstance(ctx_error, _KeyError):
        return str(ctx_error)
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


def graph_keys(dvc_yaml: Path) -> list[str]:
    """The params.yaml keys that dvc.yaml's stages interpolate (`${key}`) or declare (`params:`):
    DVC needs each one written in params.yaml (it knows no defaults); item.* and dvc.yaml's own
    vars excluded."""
    text = dvc_yaml.read_text()
    graph = yaml.safe_load(text)
    own = {key for entry in graph.get("vars", []) if isinstance(entry, dict) for key in entry}
    found = {m.strip() for m in re.findall(r"\$\{([^}]+)\}", text)}
    for stage in graph.get("stages", {}).values():
        found.update(k for k in stage.get("do", stage).get("params", []) if isinstance(k, str))
    return sorted(k for k in found if k.split(".")[0] not in own | {"item"})


def check_graph_keys(path: Path, p: Params, dvc_yaml: Path) -> None:
    """Refuse a params file that leaves out a key dvc.yaml reads (DVC would fail to read the
    graph), naming the key and the value to write (this model's default)."""
    raw = yaml.safe_load(path.read_text()) or {}
    for key in graph_keys(dvc_yaml):
        node: Any = raw
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            value: Any = p
            for part in key.split("."):
                value = getattr(value, part)
            shown = json.dumps(value.model_dump() if isinstance(value, BaseModel) else value, default=str)
            raise ConfigError(f"{path}: {key} missing: dvc.yaml's stages read it (write it, e.g. {key}: {shown})")


_MISSING = object()
