"""Each command's code: the project files it imports, read from the source itself."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

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


def test_a_run_parses_only_the_files_changed_since_the_code_stage(tmp_path, monkeypatch):
    """The code stage's source_hashes.json (bytes hash -> behaviour hash) spares a run's start
    the parsing of every file; a file whose bytes it does not know is parsed, and still counts as
    unchanged when only its comments differ."""
    real = codedeps.digest("train")
    (tmp_path / "train.json").write_text(json.dumps(real))
    (tmp_path / codedeps.SOURCE_HASHES).write_text(json.dumps(codedeps.source_hashes()))
    parsed = []
    monkeypatch.setattr(codedeps, "behaviour_sha256", lambda path: parsed.append(path) or real["files"][path.name])
    assert codedeps.current_sha256("train", tmp_path / "train.json") == real["sha256"] and not parsed
    known = json.loads((tmp_path / codedeps.SOURCE_HASHES).read_text())
    train_py = hashlib.sha256((codedeps.ROOT / "train.py").read_bytes()).hexdigest()
    (tmp_path / codedeps.SOURCE_HASHES).write_text(json.dumps({k: v for k, v in known.items() if k != train_py}))
    assert codedeps.current_sha256("train", tmp_path / "train.json") == real["sha256"]
    assert parsed == [codedeps.ROOT / "train.py"]


def test_a_file_is_hashed_by_what_it_does(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Doc."""\n\n\ndef f(x):\n    """Doc of f."""\n    return x + 1  # why\n')
    first = codedeps.behaviour_sha256(module)
    module.write_text('"""Other words."""\n# a comment\ndef f(x):\n    """Other."""\n    return (x +\n            1)\n')
    assert codedeps.behaviour_sha256(module) == first  # docstrings, comments, formatting
    module.write_text('"""Doc."""\n\n\ndef f(x):\n    """Doc of f."""\n    return x + 2\n')
    assert codedeps.behaviour_sha256(module) != first
    module.write_text('"""Doc."""\n\n\ndef f(x):\n    "Doc of f."\n    return "Doc of f."\n')
    assert codedeps.behaviour_sha256(module) != first  # a string that is returned is code
    data = tmp_path / "table.csv"
    data.write_text("a\n")
    assert codedeps.behaviour_sha256(data) == hashlib.sha256(b"a\n").hexdigest()


def test_the_repository_source_is_hashed_and_another_imported_copy_is_refused(tmp_path):
    """The code stage of a checkout whose venv imports another checkout's package: the
    repository's files are hashed, and a copy that does other things is refused in one line."""
    repo = tmp_path / "repo"
    shutil.copytree(codedeps.ROOT, repo / "src/transferlab", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(codedeps.IMPORTED.parent)}  # the imported package: not the repo's
    code = [sys.executable, "-m", "transferlab", "code", "data/code"]
    assert subprocess.run(code, cwd=repo, env=env, capture_output=True).returncode == 0  # same code
    with open(repo / "src/transferlab/train.py", "a") as f:
        f.write("\nEDITED = 1\n")
    proc = subprocess.run(code, cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "train.py" in proc.stderr and "PYTHONPATH=src" in proc.stderr
    proc = subprocess.run(code, cwd=repo, env={**env, "PYTHONPATH": str(repo / "src")}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    recorded = json.loads((repo / "data/code/train.json").read_text())["files"]["train.py"]
    assert recorded == codedeps.behaviour_sha256(repo / "src/transferlab/train.py")  # the repository's file
