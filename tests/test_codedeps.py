"""Each command's code: the project files it imports, read from the source itself."""

from __future__ import annotations

import json

from transferlab import codedeps


def test_a_study_report_imports_its_own_study_only_and_no_trainer():
    grid = codedeps.command_modules("report-grid")
    assert "transferlab.studies.grid.report" in grid and "transferlab.studies.binary.report" not in grid
    assert not [m for m in grid if m.endswith(".train") or m == "transferlab.harness"]
    train = codedeps.command_modules("train")
    assert "transferlab.train" in train and "transferlab.models.convnet8" in train  # loaded by name
    assert not [m for m in train if m.endswith(".report")]


def test_the_recorded_hash_is_used_only_while_every_listed_file_is_unchanged(tmp_path, monkeypatch):
    recorded = tmp_path / "train.json"
    real = codedeps.digest("train")
    recorded.write_text(json.dumps({**real, "sha256": "from-the-code-stage"}))
    assert codedeps.current_sha256("train", recorded) == "from-the-code-stage"
    listed = dict(real["files"])
    listed["train.py"] = "0" * 64  # as if train.py had been edited since the code stage ran
    recorded.write_text(json.dumps({**real, "files": listed, "sha256": "from-the-code-stage"}))
    assert codedeps.current_sha256("train", recorded) == real["sha256"]
    assert codedeps.current_sha256("train", tmp_path / "absent.json") == real["sha256"]
