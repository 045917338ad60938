"""Every configuration that `transferlab plan` accepts runs to the end under `dvc repro`.

A matrix of shrunken configurations, each a real `dvc repro` in its own git repository: every
optional study off on its own and all off together, every split kind alone and mixed, several
replicates, both directions, a single layer, an odd class count, a step schedule with warm-up,
early stopping (on a held-out share, and on an image folder's own val/ part), a pretrained source,
base nets without the transfer study (transfer.layers []: the entries that test something else),
and a pretrained net analysed alone (no net trained). A study that did not run says so in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from transferlab.cli import app

from conftest import tiny_params
from pipeline import make_repo, repo_env, sh, stages_run

pytestmark = pytest.mark.slow

# Everything optional off (the binary study too), one layer: each entry below turns on what it tests.
OFF = {
    "transfer.layers": [2],
    "strategies.names": [],
    "strategies.baselines": [],
    "strategies.cut_layers": [],
    "binary.betas": [],
    "analysis.binary_sources": False,
}
# In the entries that test something else: no transfer nets (fewer runs; base nets without the
# transfer study are a configuration too).
NO_TRANSFER = {"transfer.layers": []}
MATRIX = {
    "all-optional-studies-off": {},
    "strategies-alone-mn-both-directions": {
        "strategies.names": ["classifier"],
        "strategies.baselines": ["scratch"],
        "strategies.images_per_class": ["all"],
        "splits": ["mn"],
        "transfer.targets": ["A", "B"],
    },
    "binary-sweep-heads-random-fraction-classes-odd-count": {
        **NO_TRANSFER,
        "binary.betas": [0.0, 0.5],
        "binary.heads": [1, 2],
        "binary.equal_halves": False,
        "analysis.binary_sources": True,
        "data.synthetic.num_classes": 9,
        "splits": [3, "classes"],
        "split.method": "random",
        "split.fraction": 0.3,
        "split.classes_a": [0, 1, 2, 3, 4],
    },
    "all-classes-one-task-binary-sources-off-step-schedule-warmup-early-stopping": {
        **NO_TRANSFER,
        "splits": ["all"],
        "binary.equal_halves": True,
        "strategies.cut_layers": [1],
        "binary.betas": [0.0, 0.5],
        "train.schedule": "step",
        "train.step_epochs": 1,
        "train.epochs": 2,
        "train.warmup_epochs": 0.5,
        "train.val_fraction": 0.25,
        "train.patience": 1,
        "binary.frozen_units": [0, 1],
    },
    "cross-data-set": {
        "binary.betas": [0.0],  # the A' net on one data set, fine-tuned on the other
        "data.b_dataset": "mnist",
        "data.verify": False,
        "splits": ["cross"],
        "strategies.names": ["classifier"],
        "strategies.images_per_class": ["all"],
    },
    "image-folder-train-val-test-early-stopping-on-val": {
        **NO_TRANSFER,
        "data.dataset": "imagefolder",
        "data.image_folder": "data/raw/lanes",
        "data.val_folder": True,
        "train.epochs": 2,
        "train.patience": 1,
        "strategies.names": ["best_linear"],
        "strategies.images_per_class": ["all"],
        "strategies.cut_layers": [1],
    },
    "cut-alone-nm-every-class-nets-size-study-and-papers-random-control-two-replicates": {
        **NO_TRANSFER,
        "strategies.cut_layers": [1],  # without strategies.names
        "splits": ["nm"],
        "size.images_per_class": [2, 5, 24],
        "transfer.control_all_classes": [0, 2],
        "replicates": [0, 1],
    },
    "arrays-with-val-part-cut-study": {  # the MobileNet study's data: .npy frames of 3 classes, one task
        **NO_TRANSFER,
        "data.dataset": "arrays",
        "data.image_folder": "data/raw/frames",
        "data.val_folder": True,
        "splits": ["all"],
        "strategies.cut_layers": [1],
        "binary.betas": [0.0],
        "binary.equal_halves": False,  # 3 classes: the binary partition of an odd count
    },
    "alexnet-imagenet-weights-on-caltech101-analysis-only": {  # the lecture's off-the-shelf study
        "data.dataset": "caltech101",
        "data.train_per_class": 4,
        "data.image_size": 64,
        "data.workers": 0,
        "model.name": "alexnet",
        "pretrained.weights": ["IMAGENET1K_V1"],
        "pretrained.cache": "weights",
        "data.verify": False,
        "splits": ["all"],
        "base_nets": [],  # no net trained: the pretrained net's units probed (each AlexNet is 244 MB)
        "transfer.layers": [],
    },
    "timm-model-on-an-image-folder-analysis-only": {  # which layer to take, on one's own photos
        "data.dataset": "imagefolder",
        "data.image_folder": "data/raw/photos",  # class folders, no test/ part: data.test_fraction held out
        "data.image_size": 32,
        "model.name": "timm/resnet10t",
        "pretrained.weights": ["c3_in1k"],
        "pretrained.cache": "weights/resnet10t.safetensors",
        "data.verify": False,
        "splits": ["all"],
        "base_nets": [],
        "transfer.layers": [],
        "analysis.decaf_units": [4, 5],
    },
    "pretrained-source": {
        "model.name": "resnet18",
        "strategies.names": ["classifier"],  # from baseA and from the pretrained net
        "strategies.images_per_class": ["all"],
        "analysis.decaf_units": [4, 5],
        "pretrained.weights": ["IMAGENET1K_V1"],
        "pretrained.cache": "weights",
        "data.verify": False,
        "strategies.cut_layers": [1],
    },
}


# What an analysis-only configuration runs: bookkeeping, data, the pretrained net, its features, reports
ANALYSIS_ONLY_STAGES = {"code", "download", "prepare", "plan", "settings", "split", "pretrained", "features", "analyze"}
ANALYSIS_ONLY_STAGES |= {f"report-{study}" for study in ("grid", "binary", "strategies", "size", "analysis")}


def _params(overrides: dict) -> dict:
    return tiny_params(**{**OFF, **overrides})


def _mnist(repo):
    from formats import write_mnist

    write_mnist(repo / "data" / "raw", per_class=12)
    with open(repo / ".gitignore", "a") as f:
        f.write("data/raw/\n")  # the download stage's output: DVC's, not git's


def _weights(repo):
    """A resnet18 weight file where the cache would hold IMAGENET1K_V1 (random weights: the real
    file cannot be downloaded here, so the hash check is off through data.verify)."""
    import torch
    from torchvision import models as tvm

    from transferlab.models.pretrained import weights_path

    path, _ = weights_path("resnet18", "IMAGENET1K_V1", str(repo / "weights"))
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(tvm.resnet18(weights=None).state_dict(), path)
    with open(repo / ".gitignore", "a") as f:
        f.write("weights/\n")  # 45 MB: outside git, as torchvision's cache would be


def _alexnet_caltech(repo):
    """Caltech-101 in torchvision's layout (4 classes, 6 or 7 images each) and an AlexNet weight
    file where the cache would hold IMAGENET1K_V1 (random weights, hash check off)."""
    import torch
    from torchvision import models as tvm

    from transferlab.models.pretrained import weights_path

    from formats import write_caltech101

    write_caltech101(repo / "data/raw", ["accordion", "airplanes", "anchor", "ant"], per_class=[6, 7, 6, 7])
    path, _ = weights_path("alexnet", "IMAGENET1K_V1", str(repo / "weights"))
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(tvm.alexnet(weights=None).state_dict(), path)
    with open(repo / ".gitignore", "a") as f:
        f.write("data/raw/\nweights/\n")


def _photos(repo):
    """Class folders of photos (no train/ or test/ parts), and timm's resnet10t with random
    weights as a safetensors file named in pretrained.cache (the hub's cannot be fetched here)."""
    import timm
    import torch
    from safetensors.torch import save_file

    from formats import write_image_folder

    write_image_folder(repo / "data/raw/photos", ["cat", "dog", "fox", "owl"], per_class=10, parts=("",))
    torch.manual_seed(0)
    (repo / "weights").mkdir()
    state = timm.create_model("resnet10t", pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "weights/resnet10t.safetensors"))
    with open(repo / ".gitignore", "a") as f:
        f.write("data/raw/\nweights/\n")


def _lanes(repo):
    """An image folder with train/, val/ and test/ parts, inside data.root (the download stage's output)."""
    from formats import write_image_folder

    write_image_folder(
        repo / "data/raw/lanes", ["forward", "left", "right", "stop"], per_class=8, parts=("train", "val", "test")
    )
    with open(repo / ".gitignore", "a") as f:
        f.write("data/raw/\n")


def _frames(repo):
    """Image arrays with train, val and test parts, inside data.root (the download stage's output)."""
    from formats import write_arrays

    write_arrays(repo / "data/raw/frames", classes=3, per_class=8)
    with open(repo / ".gitignore", "a") as f:
        f.write("data/raw/\n")


SETUP = {
    "alexnet-imagenet-weights-on-caltech101-analysis-only": _alexnet_caltech,
    "arrays-with-val-part-cut-study": _frames,
    "cross-data-set": _mnist,
    "pretrained-source": _weights,
    "timm-model-on-an-image-folder-analysis-only": _photos,
    "image-folder-train-val-test-early-stopping-on-val": _lanes,
}


def _run(name: str, root: Path) -> tuple[Path, dict, subprocess.CompletedProcess]:
    """The configuration's repository and its real `dvc repro` (make test runs entries side by
    side, one per pytest-xdist worker; each computes with one thread)."""
    params = _params(MATRIX[name])
    repo = make_repo(root / name, params, SETUP.get(name))
    sh(repo, "dvc", "config", "--local", "cache.type", "hardlink")  # outputs linked, not copied: half the disk
    proc = subprocess.run(["dvc", "repro"], cwd=repo, env=repo_env(repo), capture_output=True, text=True)
    return repo, params, proc


@pytest.mark.parametrize("name", list(MATRIX))
def test_every_accepted_configuration_runs_to_the_end(tmp_path, name):
    repo, params, proc = _run(name, tmp_path)
    assert proc.returncode == 0, f"dvc repro failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    plan = CliRunner().invoke(app, ["plan", "--params", str(repo / "params.yaml")])
    assert plan.exit_code == 0, plan.output
    assert {"report-grid", "report-binary", "report-strategies", "report-size", "report-analysis"} <= stages_run(
        proc.stdout + proc.stderr
    )
    _check_reports(repo, params, plan.output)
    assert "up to date" in sh(repo, "dvc", "status")
    if not params["base_nets"]:  # the analysis of the pretrained net alone: no command trained a net
        assert not [s for s in stages_run(proc.stdout) if s.split("@")[0] not in ANALYSIS_ONLY_STAGES], proc.stdout
        assert "0 runs: no net is trained" in plan.output
    if params["data"][
        "val_folder"
    ]:  # every run validated on the data set's own val part: 8 images of each of B's classes
        split, val_images = params["splits"][0], 8 * (3 if params["data"]["dataset"] == "arrays" else 2)
        run_ids = [f"grid/s{split}/baseB/r0", f"strategies/s{split}/cut1/r0"]
        run_ids += [f"strategies/s{split}/strat-best_linear-iall/r0"] if params["strategies"]["names"] else []
        for run_id in run_ids:
            m = json.loads((repo / f"data/runs/{run_id}/metrics.json").read_text())
            assert m["val_from"] == "val_folder" and m.get("val_images", val_images) == val_images, run_id
            assert 0 <= m["best_val_top1"] <= 1, run_id
        assert "val top-1" in (repo / "reports/tables/cut.md").read_text()
    # the DeCAF table: a section per source net and split kind, each with its four classifier rows
    decaf = (repo / "reports/tables/decaf.md").read_text()
    bases = [f"base{half}" for half in params["base_nets"]]
    sources = [*bases, *(["the pretrained net"] if params["pretrained"]["weights"] else [])]
    assert all(f"## {s}: " in decaf for s in sources), decaf
    assert decaf.count("| SVM with dropout | ") == decaf.count("\n## ") >= len(sources), decaf
    if params["data"]["dataset"] == "caltech101":  # test classes of 2 and 3 images: DeCAF's Caltech-101 measure
        assert "Mean per-class accuracy on B" in decaf, decaf
    if params["model"]["name"] in ("convnet8", "alexnet"):  # CaffeNet's unit names, units 5, 6, 7 by default
        assert "| conv5 (n = 5) | fc6 (n = 6) | fc7 (n = 7) |" in decaf
    shutil.rmtree(repo)  # passed: its disk back at once (the AlexNet entry's checkpoints take a few GB)


def _check_reports(repo, params: dict, plan: str) -> None:
    """Every planned run has its row; figures of studies that ran exist, the others say why not."""
    tables = {
        s: pd.read_parquet(repo / f"reports/{s}/results.parquet") for s in ("grid", "binary", "strategies", "size")
    }
    planned = {line.strip() for line in plan.splitlines()[1:]}
    run_ids = set().union(*(set(t.run_id.dropna()) for t in tables.values() if "run_id" in t))
    assert run_ids == planned
    for study in ("grid", "binary", "strategies", "size", "analysis"):
        metrics = json.loads((repo / f"reports/{study}/metrics.json").read_text())
        assert not [k for k, v in pd.json_normalize(metrics).iloc[0].items() if isinstance(v, str)], study
    figures = repo / "reports/figures"
    for name in (
        "transfer",
        "transfer_relative",
        "binary_beta",
        "binary_tradeoff",
        "binary_curves",
        "probe",
        "cka",
        "estimates",
    ):
        assert (figures / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    strategies = params["strategies"]
    for name in ("strategies", "cut"):  # drawn, or a figure that says the part did not run
        assert (figures / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    take_home = (repo / "reports/tables/take_home.md").read_text()
    assert ("Not run: strategies.names is []" in take_home) == (not strategies["names"])
    assert (figures / "size.png").read_bytes()[:4] == b"\x89PNG"  # drawn, or says size.images_per_class is []
    sizes = tables["size"]
    assert sorted(set(sizes.images_per_class)) == sorted(params["size"]["images_per_class"])
    if len(sizes):  # every class, k training images of each (the synthetic set holds 24 per class here)
        classes = params["data"]["synthetic"]["num_classes"]
        assert (sizes.classes == classes).all() and (sizes.train_images == classes * sizes.images_per_class).all()


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            {
                "binary.betas": [0.0],
                "splits": [0],
                "split.method": "random",
                "split.fraction": 0.3,
                "binary.equal_halves": True,
            },
            "binary.equal_halves: found True, allowed: false, or an even class count in A (A has 3 classes",
        ),
    ],
)
def test_plan_refuses_what_cannot_run(tmp_path, overrides, expected):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(**{"data.synthetic.num_classes": 9, **overrides})))
    result = CliRunner().invoke(app, ["plan", "--params", str(path)])
    assert result.exit_code == 2 and expected in result.output, result.output
