import pytest
import torch

from transferlab.config import DataConfig, SyntheticConfig, TrainConfig
from transferlab.data.batches import random_crop_flip, steps_per_epoch, train_batches
from transferlab.data.dataset import prepare_synthetic, select_classes
from transferlab.models import create_model
from transferlab.train import FitOptions, fit
from transferlab.transfer import param_groups


def _task(classes=4, per_class=40, size=16, test_per_class=10):
    ds = prepare_synthetic(
        DataConfig(
            image_size=size,
            synthetic=SyntheticConfig(num_classes=8, train_per_class=per_class, test_per_class=test_per_class),
        )
    )
    return select_classes(ds, list(range(classes)))


def test_select_classes_reindexes_labels_in_sorted_order():
    ds = prepare_synthetic(
        DataConfig(image_size=16, synthetic=SyntheticConfig(num_classes=6, train_per_class=3, test_per_class=2))
    )
    task = select_classes(ds, [1, 4])
    assert task.classes == [ds.classes[1], ds.classes[4]]
    assert task.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(task.train_x[3], ds.train_x[12])
    assert task.train_x.dtype == torch.uint8 and task.train_x.shape == (6, 3, 16, 16)


def test_crop_and_flip_use_per_image_offsets():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).reshape(2, 3, 8, 8).repeat(64, 1, 1, 1)
    out = random_crop_flip(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert len({tuple(o.flatten().tolist()) for o in out[::2]}) > 10  # not one offset for the batch
    same = random_crop_flip(x, 0, torch.Generator().manual_seed(0))
    assert all(torch.equal(s, xi) or torch.equal(s, xi.flip(2)) for s, xi in zip(same, x))


def test_batches_cover_the_permutation():
    idx = torch.cat(list(train_batches(100, 32, torch.Generator().manual_seed(0), torch.device("cpu"))))
    assert len(idx) == 96 == 32 * steps_per_epoch(100, 32)  # the last 4 are dropped (< half a batch)
    assert len(set(idx.tolist())) == 96


def _fit(task, cfg, **opts):
    torch.manual_seed(0)
    model = create_model("convnet8", task.num_classes, width=0.125, image_size=16)
    history = fit(model, task, cfg, param_groups(model, 0, 1.0), FitOptions(torch.device("cpu"), seed=3, **opts))
    return model, history


def test_training_learns_well_above_chance():
    task = _task(per_class=80, test_per_class=30)  # 120 test images: one image is 0.8 points
    _, history = _fit(task, TrainConfig(epochs=8, batch_size=32, lr=0.02))
    assert history.records[-1]["test_top1"] >= 2 / task.num_classes  # measured 0.71, chance 0.25


class Crash(Exception):
    pass


def test_a_resumed_run_ends_with_the_same_numbers(tmp_path):
    task, cfg = _task(), TrainConfig(epochs=3, batch_size=32, lr=0.05)
    _, straight = _fit(task, cfg)
    ckpt = tmp_path / "ckpt.pt"

    def crash_in_third_epoch(record):
        if record["epoch"] > 2:
            raise Crash

    try:
        _fit(task, cfg, checkpoint=ckpt, fingerprint="x", on_record=crash_in_third_epoch)
    except Crash:
        pass
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1  # epochs 0 and 1 were saved
    _, resumed = _fit(task, cfg, checkpoint=ckpt, fingerprint="x")
    assert [r["test_top1"] for r in resumed.records] == [r["test_top1"] for r in straight.records]
    assert resumed.records[-1]["train_loss"] == straight.records[-1]["train_loss"]
    assert (resumed.resumed_epochs, straight.resumed_epochs) == (2, 0)


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, capsys):
    task, cfg = _task(), TrainConfig(epochs=2, batch_size=32)
    ckpt = tmp_path / "ckpt.pt"
    _fit(task, cfg, checkpoint=ckpt, fingerprint="old")
    capsys.readouterr()
    _, history = _fit(task, cfg, checkpoint=ckpt, fingerprint="new")
    assert len(history.records) == 2 and history.resumed_epochs == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "checkpoint" in line]
    assert len(said) == 1 and said[0].endswith("made by other code, inputs, params or device; starting from scratch")


def test_a_runs_fingerprint_covers_its_code_its_input_files_and_its_params(tmp_path, monkeypatch):
    from transferlab import codedeps
    from transferlab.config import parse_params
    from transferlab.harness import run_fingerprint
    from transferlab.runs import Layout, parse_run

    from conftest import project, tiny_params

    project(tmp_path, tiny_params(), "0")
    params, run = parse_params(tiny_params()), parse_run("s0/baseA/r0")
    layout = Layout.of(params, tmp_path)
    first = run_fingerprint(params, run, layout)
    assert run_fingerprint(params, run, layout) == first
    assert run_fingerprint(parse_params(tiny_params(threads=2)), run, layout) != first
    split = layout.split_file("0")
    split.write_text(split.read_text().replace('"method"', '"method" ', 1))
    assert run_fingerprint(params, run, layout) != first
    second = run_fingerprint(params, run, layout)
    real = codedeps.digest
    monkeypatch.setattr(codedeps, "digest", lambda command: {**real(command), "sha256": "edited"})
    assert run_fingerprint(params, run, layout) != second


def test_summary_reports_the_mean_of_the_k_best():
    from transferlab.train import History

    h = History([{"test_top1": v} for v in (0.1, 0.5, 0.3, 0.4)])
    s = h.summary(best_k=2)
    assert s["final_top1"] == 0.4 and s["best_top1"] == 0.5
    assert abs(s["topk_mean_top1"] - 0.45) < 1e-12 and s["best_k"] == 2
    assert h.summary(best_k=10)["best_k"] == 4


def test_mean_per_class_accuracy_beside_top1_where_test_classes_are_unbalanced():
    from dataclasses import replace

    from transferlab.accuracy import mean_class_top1, unbalanced
    from transferlab.data.batches import normalize
    from transferlab.train import History

    # by hand: class 0 two of three right, class 1 one of one, class 2 none of one
    assert mean_class_top1([True, True, False, True, False], [0, 0, 0, 1, 2]) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert unbalanced([0, 0, 0, 1, 2]) and not unbalanced([2, 2, 0, 0]) and not unbalanced([3, 3])
    task = _task()
    keep = task.test_y != 1
    keep[torch.nonzero(task.test_y == 1)[:3]] = True  # class 1 keeps 3 test images, the others 10
    task = replace(task, test_x=task.test_x[keep], test_y=task.test_y[keep])
    model, history = _fit(task, TrainConfig(epochs=2, batch_size=32, lr=0.02, best_k=1))
    s = history.summary(best_k=1)
    record = history.records[-1]
    mean, std = history.input_stats
    with torch.no_grad():
        predicted = model.eval()(normalize(task.test_x, mean, std)).argmax(1)
    per_class = [(predicted[task.test_y == c] == c).float().mean().item() for c in range(task.num_classes)]
    assert record["test_mean_class_top1"] == pytest.approx(sum(per_class) / len(per_class))
    assert record["test_top1"] == pytest.approx((predicted == task.test_y).float().mean().item())
    best = max(range(2), key=lambda i: history.records[i]["test_top1"])  # at the evaluation of the reported top-1
    assert s["mean_class_top1"] == history.records[best]["test_mean_class_top1"]
    assert s["final_mean_class_top1"] == record["test_mean_class_top1"]
    _, balanced = _fit(_task(), TrainConfig(epochs=1, batch_size=32))
    assert "test_mean_class_top1" not in balanced.records[-1] and "mean_class_top1" not in balanced.summary(3)
    h = History(
        [{"test_top1": t, "test_mean_class_top1": m, "val_top1": v} for t, m, v in ((0.5, 0.4, 0.9), (0.6, 0.3, 0.8))]
    )
    assert h.summary(best_k=1)["mean_class_top1"] == 0.4  # a run that validated: at its best validation evaluation


def test_holdout_is_stratified_disjoint_and_seeded():
    from transferlab.data.sampling import stratified_holdout

    y = torch.arange(4).repeat_interleave(10)
    keep, held = stratified_holdout(y, 0.2, seed=1)
    assert torch.bincount(y[held]).tolist() == [2, 2, 2, 2]
    assert set(keep.tolist()).isdisjoint(held.tolist()) and len(keep) + len(held) == 40
    assert torch.equal(held, stratified_holdout(y, 0.2, seed=1)[1])
    assert not torch.equal(held, stratified_holdout(y, 0.2, seed=2)[1])


def test_early_stopping_on_the_validation_part():
    from transferlab.train import stalled

    recs = [{"val_top1": v} for v in (0.2, 0.5, 0.4, 0.5)]
    assert stalled(recs, 2) and not stalled(recs, 3) and not stalled(recs, 0) and not stalled([], 2)
    task = _task()
    cfg = TrainConfig(epochs=30, batch_size=32, lr=0.05, val_fraction=0.25, patience=2, schedule="constant")
    _, history = _fit(task, cfg)
    summary = history.summary(3)
    assert summary["epochs_run"] < 30 and "val_top1" in history.records[0]
    assert stalled(history.records, 2)
    assert (
        summary["test_top1_at_best_val"]
        == history.records[[r["val_top1"] for r in history.records].index(summary["best_val_top1"])]["test_top1"]
    )


def test_every_crop_is_a_window_of_the_padded_image_or_its_mirror():
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(x, 2, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (2,) * 4)
    for img, src in zip(out, padded):
        windows = [src[:, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(img, win) or torch.equal(img, win.flip(2)) for win in windows)


def test_a_budget_in_iterations_is_met_exactly_and_resumes_at_the_same_iteration(tmp_path):
    """The paper gave iterations (450000 of 256, lr / 10 every 100000): a budget of 7 steps with
    4 steps per epoch is one whole epoch and 3 steps, evaluated at its end; the step schedule
    drops at step_iterations; a run killed after its first epoch ends with the same numbers."""
    task = _task()
    cfg = TrainConfig(iterations=8, batch_size=32, schedule="step", step_iterations=6, lr=0.1)
    _, straight = _fit(task, cfg)
    per_epoch = -(-len(task.train_y) // 32)
    assert per_epoch == 5  # (the test's premise)
    assert [r["step"] for r in straight.records] == [5, 8]
    assert straight.records[0]["lr"] == pytest.approx(0.1) and straight.records[1]["lr"] == pytest.approx(0.01)
    ckpt = tmp_path / "ckpt.pt"

    def crash_after_first_epoch(record):
        if record["step"] == 8:  # in the second, partial epoch: the first one's checkpoint is saved
            raise Crash

    with pytest.raises(Crash):
        _fit(task, cfg, checkpoint=ckpt, fingerprint="x", on_record=crash_after_first_epoch)
    _, resumed = _fit(task, cfg, checkpoint=ckpt, fingerprint="x")
    assert resumed.resumed_epochs == 1 and [r["step"] for r in resumed.records] == [5, 8]
    assert resumed.records[-1]["test_top1"] == straight.records[-1]["test_top1"]
    assert resumed.records[-1]["train_loss"] == straight.records[-1]["train_loss"]


def test_the_live_log_ends_when_a_parallel_run_removed_dvclives_signal_file(tmp_path, monkeypatch):
    """Two queued experiments (or Snakemake jobs) race to remove DVCLive's one signal file for
    the VS Code extension in .dvc/tmp/exps/run; the run that loses the race is complete all the
    same (a queued sweep failed so). Another missing file still fails."""
    import dvclive.vscode

    from transferlab.harness import LiveLog

    run_dir = tmp_path / ".dvc/tmp/exps/run"
    run_dir.mkdir(parents=True)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    log = LiveLog(tmp_path / "live")
    log({"step": 1, "epoch": 1.0, "test_top1": 0.5})
    assert (run_dir / "DVCLIVE_STEP_COMPLETED").is_file()

    def lost_the_race(path):
        raise FileNotFoundError(2, "No such file or directory", path)

    monkeypatch.setattr(dvclive.vscode.os, "remove", lost_the_race)
    log.end()
    other = LiveLog(tmp_path / "live2")
    monkeypatch.setattr(other.live, "sync", lambda: lost_the_race(str(tmp_path / "live2/metrics.json")))
    with pytest.raises(FileNotFoundError):
        other.end()


def test_a_fork_waits_for_dvclives_thread(tmp_path, monkeypatch):
    """A DataLoader worker forked while DVCLive's Live() was being made on its thread hung on a
    lock the child inherited: a fork now waits until that thread is done."""
    import os
    import time

    from transferlab import harness

    made = []

    def slow_live(directory, **options):
        time.sleep(1.5)
        made.append(directory)
        return object()

    monkeypatch.setattr(harness, "_dvclive_live", lambda: slow_live)
    log = harness.LiveLog(tmp_path / "live")
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: was Live made before it was forked?
        os._exit(0 if made else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and time.monotonic() - t0 > 1
    assert log.live is not None and harness._live_threads == []
