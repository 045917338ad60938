"""Atomic outputs: a file or folder is published whole, or the old one stays."""

from __future__ import annotations

import os

import pytest

from transferlab import artifacts
from transferlab.artifacts import atomic_dir, atomic_json


def test_a_folder_replaced_atomically_keeps_the_old_one_when_the_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "cache"
    with atomic_dir(target) as d:
        (d / "old.txt").write_text("old")
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(src).endswith(".tmp"):  # the new folder's rename: a crash at the worst moment
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        with atomic_dir(target) as d:
            (d / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no temp or aside folder left


def test_a_new_folder_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "cache"
    for name in ("a", "b"):
        with atomic_dir(target) as d:
            (d / name).write_text(name)
    assert [p.name for p in target.iterdir()] == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    atomic_json({"a": 1}, tmp_path / "m.json")
    with pytest.raises(TypeError):
        atomic_json({"a": object()}, tmp_path / "m.json")
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_the_same_object_saved_twice_gives_the_same_bytes(tmp_path):
    """torch.save given a path names the zip's root folder after it (a temp name, different each
    time), and np.savez stamps each member with the time: files that stages depend on must be the
    same bytes when remade from the same inputs, or DVC reruns everything below them."""
    import time

    import numpy as np
    import torch

    state = {"run_id": "s0/baseA/r0", "state_dict": {"w": torch.arange(12.0).view(3, 4)}, "classes": ["a", "b"]}
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    artifacts.atomic_torch_save(state, first)
    time.sleep(2.1)  # a zip stamps times in 2-second steps
    artifacts.atomic_torch_save(state, second)
    assert first.read_bytes() == second.read_bytes()
    assert torch.equal(torch.load(first, weights_only=True)["state_dict"]["w"], state["state_dict"]["w"])
    arrays = {"unit1": np.arange(6.0).reshape(2, 3), "labels": np.array([0, 1])}
    artifacts.save_npz(tmp_path / "first.npz", arrays)
    time.sleep(2.1)
    artifacts.save_npz(tmp_path / "second.npz", arrays)
    assert (tmp_path / "first.npz").read_bytes() == (tmp_path / "second.npz").read_bytes()
    assert np.array_equal(np.load(tmp_path / "second.npz")["unit1"], arrays["unit1"])
