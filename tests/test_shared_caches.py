"""The folders that the project's tools keep outside the repository (DVC's site cache,
torch.compile's caches) are private to the user: played as a second user who plants folders
in the shared temp folders first."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from transferlab.errors import InputError
from transferlab.private import private_dir

from conftest import tiny_params
from pipeline import make_repo, repo_env, sh
from second_user import as_nobody, needs_second_user, shared_tmp_name

ROOT = Path(__file__).resolve().parents[1]


def test_a_private_folder_is_made_0700_and_a_loose_one_refused_in_one_line(tmp_path):
    made = private_dir(tmp_path / "a/b")
    assert (made.stat().st_mode & 0o777) == 0o700 and ((tmp_path / "a").stat().st_mode & 0o777) == 0o700
    (tmp_path / "loose").mkdir(mode=0o777)
    os.chmod(tmp_path / "loose", 0o777)
    with pytest.raises(InputError, match="writable by others") as err:
        private_dir(tmp_path / "loose")
    assert "\n" not in str(err.value)
    (tmp_path / "link").symlink_to(made)
    with pytest.raises(InputError, match="not a real folder"):
        private_dir(tmp_path / "link")


@needs_second_user
def test_dvc_keeps_its_databases_in_a_private_folder_not_in_var_tmp(tmp_path):
    """DVC's default site cache (/var/tmp/dvc/repo, 0777 and not sticky) let another user swap
    a repository's databases (code execution through a pickled link database; a planted hash
    hid an edit from `dvc status`). The repository's DVC uses a private folder instead, and a
    cache folder planted by another user is refused in one line."""
    repo = make_repo(tmp_path / "repo", tiny_params())
    sh(repo, "dvc", "repro", "code")  # reads and writes DVC's hash and link databases
    sh(repo, "dvc", "status")
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        used = Path(dvc.site_cache_dir)
    home = Path(os.path.expanduser("~/.cache/transferlab/dvc-site"))
    assert used.parent.parent == home and (home.stat().st_mode & 0o077) == 0
    # DVC names a repository's folder by a token of its path, user and DVC version, wherever the
    # site cache is: nothing of this repository's in DVC's default, shared one (/var/tmp/dvc here),
    # not even a link, which is not followed. (Not "the shared folder unchanged": on a shared
    # machine other users' DVC writes there meanwhile.)
    from dvc.dirs import site_cache_dir

    assert not os.path.lexists(Path(site_cache_dir()) / "repo" / used.name)
    with shared_tmp_name() as planted:  # another user's folder where our cache would go
        as_nobody("mkdir", "-m", "777", str(planted))
        as_nobody("mkdir", "-m", "777", str(planted / "transferlab"))
        (repo / ".dvc/config.local").write_text("")
        proc = subprocess.run(
            [sys.executable, "workflow/site_cache.py"],
            cwd=repo,
            env={**repo_env(repo), "XDG_CACHE_HOME": str(planted)},
            capture_output=True,
            text=True,
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and "owned by uid" in lines[0], proc.stderr
        assert "site_cache_dir" not in (repo / ".dvc/config.local").read_text()
        proc = subprocess.run(
            ["snakemake", "-n"],
            cwd=repo,
            env={**repo_env(repo), "XDG_CACHE_HOME": str(planted)},
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0 and "owned by uid" in proc.stdout + proc.stderr


COMPILE = """
import torch
from transferlab.train import compiled
net = compiled(torch.nn.Linear(4, 2))
net(torch.randn(3, 4))
from torch._inductor.runtime.cache_dir_utils import cache_dir
print(cache_dir())
"""


@needs_second_user
def test_torch_compile_caches_its_code_in_a_private_folder(tmp_path):
    """Inductor's default, /tmp/torchinductor_<user>, is used unchecked: a folder planted there
    first by another user let them swap the generated code."""
    planted = Path(f"/tmp/torchinductor_{pwd.getpwuid(os.getuid()).pw_name}")  # Inductor's default for us
    ours = not planted.exists()
    if ours:  # the attack: another user's open folder where Inductor would write (removed afterwards)
        as_nobody("mkdir", "-m", "777", str(planted))
    try:
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT / "src")}
        env.pop("TORCHINDUCTOR_CACHE_DIR", None)
        env.pop("TRITON_CACHE_DIR", None)
        proc = subprocess.run([sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        used = Path(proc.stdout.strip().splitlines()[-1])
        assert used == tmp_path / "cache/transferlab/inductor" and any(used.rglob("*.py"))  # its generated code
        assert (used.stat().st_mode & 0o077) == 0
        if os.access(planted, os.R_OK):  # none of our generated code in the shared folder (others' may come and go)
            generated = {p.relative_to(used) for p in used.rglob("*.py")}
            assert not any(os.path.lexists(planted / name) for name in generated)
    finally:
        if ours:  # the test's own planted folder must not outlive it: torch outside this project would use it
            as_nobody("rm", "-rf", str(planted))
    with shared_tmp_name("torchinductor_") as theirs:  # a cache folder the user names is checked too
        as_nobody("mkdir", "-m", "777", str(theirs))
        env["TORCHINDUCTOR_CACHE_DIR"] = str(theirs)
        proc = subprocess.run([sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode != 0 and f"{theirs}: owned by uid" in proc.stderr
        assert list(theirs.iterdir()) == []


def test_a_chosen_site_cache_folder_that_is_gone_is_made_again_private(tmp_path):
    """The folder a repository's config names for DVC's site cache, gone (a cleared ~/.cache),
    is made again 0700 with its missing parents, as torch.compile's are, instead of stopping
    `make setup` and the Snakefile; one that exists and others can write to is still refused."""
    (tmp_path / ".dvc").mkdir()
    gone = tmp_path / "cleared/dvc-site"
    (tmp_path / ".dvc/config.local").write_text(f"[core]\n    site_cache_dir = {gone}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("DVC_SITE_CACHE_DIR", None)

    def site_cache() -> subprocess.CompletedProcess:
        script = [sys.executable, str(ROOT / "workflow/site_cache.py"), str(tmp_path)]
        return subprocess.run(script, env=env, capture_output=True, text=True)

    proc = site_cache()
    assert proc.returncode == 0 and str(gone) in proc.stdout, proc.stderr
    assert all((p.stat().st_mode & 0o777) == 0o700 for p in (gone, gone.parent))
    os.chmod(gone, 0o777)
    proc = site_cache()
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "writable by others" in lines[0], proc.stderr


def test_no_command_makes_a_folder_in_the_shared_temp_folder(tmp_path):
    """torchvision's import (here: `download` checking a torchvision data set) loads torch._dynamo,
    which makes Inductor's cache folder at once: /tmp/torchinductor_<user> by default. Every
    command points it at the private folder first."""
    shared = tmp_path / "shared"  # the temp folder the process sees (TMPDIR)
    shared.mkdir()
    params = tiny_params(
        **{"data.dataset": "cifar10", "data.root": str(tmp_path / "raw"), "binary.equal_halves": False}
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "TMPDIR": str(shared), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "transferlab", "download"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "cifar10" in proc.stderr  # its files are missing: one line, after the import
    assert list(shared.iterdir()) == []
    assert (tmp_path / "cache/transferlab/inductor").stat().st_mode & 0o077 == 0
