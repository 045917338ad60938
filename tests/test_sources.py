"""Real data sets read from files in their original formats, written here (no network)."""

from __future__ import annotations

import pytest
import torch
import yaml
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.config import DataConfig, SplitConfig
from transferlab.data.dataset import prepare_dataset
from transferlab.data.sources import cifar100_groups, ilsvrc12_groups, ilsvrc12_wnids, imagenet100_wnids
from transferlab.data.splits import make_split
from transferlab.errors import InputError

from conftest import project, tiny_params
from formats import label_of, write_cifar, write_image_folder, write_mnist, write_svhn


def _cfg(tmp_path, **kw) -> DataConfig:
    native = {"image_size": 32}  # CIFAR's and SVHN's own size (the default is 16)
    return DataConfig(**{"root": str(tmp_path), "verify": False, "workers": 0, **native, **kw})


def _check(ds, classes: int, train: int, test: int, size: int = 32) -> None:
    assert ds.train_x.dtype == ds.test_x.dtype == torch.uint8
    assert ds.train_y.dtype == ds.test_y.dtype == torch.int64
    assert tuple(ds.train_x.shape) == (train, 3, size, size) and tuple(ds.test_x.shape) == (test, 3, size, size)
    assert len(ds.classes) == len(ds.groups) == len(ds.sources) == classes
    # every image still carries its own label (grey level), through resizing and channel repeat
    assert (label_of(ds.train_x) == ds.train_y.numpy()).all() and (label_of(ds.test_x) == ds.test_y.numpy()).all()


def test_cifar10_from_its_python_pickles(tmp_path):
    write_cifar(tmp_path, "cifar10", per_class=2)
    ds = prepare_dataset(_cfg(tmp_path, dataset="cifar10"))
    _check(ds, 10, 5 * 20, 20)
    assert ds.classes[0] == "airplane" and ds.groups[:3] == ["manmade", "manmade", "natural"]


def test_cifar100_with_superclass_groups_and_manmade_natural_split(tmp_path):
    write_cifar(tmp_path, "cifar100", per_class=2)
    ds = prepare_dataset(_cfg(tmp_path, dataset="cifar100"))
    _check(ds, 100, 24, 24)
    s = make_split("mn", ds.classes, ds.groups, ds.sources, SplitConfig())
    assert len(s.classes_a) == 30 and len(s.classes_b) == 70
    assert {ds.classes[i] for i in s.classes_a} >= {"bottle", "bicycle", "skyscraper", "tractor", "wardrobe"}


def test_cifar100_table_documents_all_classes_once():
    table = cifar100_groups()
    assert len(table) == 100 and sum(g == "manmade" for g in table.values()) == 30


def test_svhn_from_mat_files_maps_digit_zero(tmp_path):
    write_svhn(tmp_path, per_class=2)
    ds = prepare_dataset(_cfg(tmp_path, dataset="svhn"))
    _check(ds, 10, 20, 20)
    assert ds.classes == [str(d) for d in range(10)]


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_idx_files_become_rgb_at_the_model_size(tmp_path, name, folder):
    write_mnist(tmp_path, folder, per_class=2)
    ds = prepare_dataset(_cfg(tmp_path, dataset=name, image_size=32))
    _check(ds, 10, 20, 20)
    assert torch.equal(ds.train_x[:, 0], ds.train_x[:, 2])  # grey repeated


def test_image_folder_with_train_and_val(tmp_path):
    write_image_folder(tmp_path / "lane", ["forward", "left", "right"], per_class=4)
    ds = prepare_dataset(_cfg(tmp_path, dataset="imagefolder", image_folder=str(tmp_path / "lane"), image_size=24))
    _check(ds, 3, 12, 12, size=24)
    assert ds.classes == ["forward", "left", "right"]


def test_image_folder_without_test_part_holds_out_a_fraction_per_class(tmp_path):
    write_image_folder(tmp_path / "imgs", ["a", "b"], per_class=10, parts=("",))
    ds = prepare_dataset(
        _cfg(tmp_path, dataset="imagefolder", image_folder=str(tmp_path / "imgs"), test_fraction=0.2, image_size=16)
    )
    _check(ds, 2, 16, 4, size=16)
    assert torch.bincount(ds.test_y).tolist() == [2, 2]


def test_imagenet_class_folders_get_ilsvrc_groups_and_imagenet100_names_missing_classes(tmp_path):
    wnids = ilsvrc12_wnids()
    picked = [wnids[0], wnids[1], wnids[400]]  # tench, goldfish (natural), a man-made class
    write_image_folder(tmp_path / "in", picked, per_class=2)
    ds = prepare_dataset(_cfg(tmp_path, dataset="imagenet", image_folder=str(tmp_path / "in"), image_size=16))
    _check(ds, 3, 6, 6, size=16)
    assert ds.classes == picked and ds.groups == ["natural", "natural", "manmade"]
    with pytest.raises(InputError, match=r"imagenet100: .* lacks class folders n\d+.* \(100 of 100\)"):
        prepare_dataset(_cfg(tmp_path, dataset="imagenet100", image_folder=str(tmp_path / "in")))


def test_imagenet100_list_is_a_documented_ilsvrc_subset():
    wn = imagenet100_wnids()
    assert len(set(wn)) == 100 and set(wn) <= set(ilsvrc12_groups())


def test_cross_data_set_task_puts_each_data_set_in_one_half(tmp_path):
    write_cifar(tmp_path, "cifar100", per_class=2)
    write_mnist(tmp_path, "MNIST", per_class=2)
    ds = prepare_dataset(_cfg(tmp_path, dataset="cifar100", b_dataset="mnist"))
    assert ds.name == "cifar100+mnist" and len(ds.classes) == 110
    assert ds.classes[0] == "cifar100:apple" and ds.classes[100].startswith("mnist:0")
    s = make_split("cross", ds.classes, ds.groups, ds.sources, SplitConfig())
    assert s.classes_a == list(range(100)) and s.classes_b == list(range(100, 110))
    assert tuple(ds.train_x.shape[1:]) == (3, 32, 32) and ds.train_y.max() == 109


def test_per_class_caps_are_balanced(tmp_path):
    write_cifar(tmp_path, "cifar10", per_class=2)
    ds = prepare_dataset(_cfg(tmp_path, dataset="cifar10", max_train_per_class=3, max_test_per_class=1))
    assert torch.bincount(ds.train_y).tolist() == [3] * 10 and torch.bincount(ds.test_y).tolist() == [1] * 10


def test_missing_files_offline_name_the_folder_and_files(tmp_path):
    with pytest.raises(InputError, match=r"cifar10: .* lacks cifar-10-batches-py/data_batch_1, .*data\.download: true"):
        prepare_dataset(_cfg(tmp_path / "none", dataset="cifar10"))
    with pytest.raises(InputError, match=r"svhn: .* lacks train_32x32.mat, test_32x32.mat"):
        prepare_dataset(_cfg(tmp_path / "none", dataset="svhn"))


def test_files_that_fail_the_md5_check_are_refused(tmp_path):
    write_cifar(tmp_path, "cifar10", per_class=1)
    with pytest.raises(InputError, match="MD5 sums differ"):
        prepare_dataset(_cfg(tmp_path, dataset="cifar10", verify=True))


def test_prepare_and_split_commands_on_cifar10_and_their_errors(tmp_path):
    write_cifar(tmp_path / "raw", "cifar10", per_class=1)
    params = tiny_params(
        **{"data.dataset": "cifar10", "data.root": str(tmp_path / "raw"), "data.verify": False, "splits": ["classes"]}
    )
    params["split"]["classes_a"] = ["cat", "dog"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = lambda *a: CliRunner().invoke(app, [*a, "--params", str(tmp_path / "params.yaml")])  # noqa: E731
    out = tmp_path / "ds.pt"
    assert run("prepare", str(out)).exit_code == 0
    result = run("split", "--split", "classes", str(out), str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output
    split = yaml.safe_load((tmp_path / "s.json").read_text())
    assert split["names_a"] == ["cat", "dog"] and len(split["names_b"]) == 8
    params["split"]["classes_a"] = ["cat", "cow"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run("split", "--split", "classes", str(out), str(tmp_path / "s2.json"))
    assert (
        result.exit_code == 2
        and result.output.strip()
        == "error: split.classes_a: found 'cow', not a class of the data set (e.g. airplane, automobile, bird, cat)"
    )
    assert not (tmp_path / "s2.json").exists()
    params["data"]["root"] = str(tmp_path / "elsewhere")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run("prepare", str(tmp_path / "ds2.pt"))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1 and "elsewhere lacks" in result.output


def test_a_cross_data_set_task_trains_and_transfers_through_the_commands(tmp_path):
    write_cifar(tmp_path / "raw", "cifar100", per_class=2)
    write_svhn(tmp_path / "raw", per_class=2)
    params = tiny_params(
        **{
            "data.dataset": "cifar100",
            "data.b_dataset": "svhn",
            "data.root": str(tmp_path / "raw"),
            "data.verify": False,
            "splits": ["cross"],
        }
    )
    run = project(tmp_path, {**params, "transfer": {**params["transfer"], "layers": [2]}}, "cross")
    for run_id in ("scross/baseA/r0", "scross/A2B/r0"):
        run("train", run_id, "--device", "cpu", "--root", str(tmp_path))
    metrics = yaml.safe_load((tmp_path / "data/runs/grid/scross/A2B/r0/metrics.json").read_text())
    assert metrics["run_id"] == "scross/A2B/r0" and 0 <= metrics["final_top1"] <= 1
