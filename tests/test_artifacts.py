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
