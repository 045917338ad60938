"""Experiments the way DVC users compare them, with the real dvc in temporary repositories:
queued sweeps run together and retrain only what they change, `dvc plots diff` overlays
experiments in every plot that dvc.yaml defines over data, and a data set in a folder outside
the repository works under both engines and in a queued experiment (one inside it stops a
queued experiment with one line saying what to do)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, tiny_params
from formats import write_cifar
from pipeline import copy_repo, make_repo, repo_env, sh, stages_run

pytestmark = pytest.mark.slow

# What a change of binary.betas may rerun: the plan, the binary study, the analysis (its features read
# the A' nets) and their reports.
BETA_STAGES = {"plan", "binary-base", "binary-finetune", "features", "analyze", "report-binary", "report-analysis"}
OFF = {  # the data-root tests need a run of each stage kind, not each study
    "transfer.layers": [2],
    "strategies.names": [],
    "strategies.cut_layers": [],
    "binary.betas": [0.0],
    "analysis.binary_sources": False,
}


def _end_workers(repo: Path) -> None:
    """Stop the queue's workers; one that does not hear it (the race above) is terminated."""
    sh(repo, "dvc", "queue", "stop")
    deadline = time.monotonic() + 10
    for pid_file in (repo / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.pid"):
        pid = int(pid_file.read_text().strip() or 0)
        while pid and time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.2)
        if pid and Path(f"/proc/{pid}").exists() and "queue-worker" in Path(f"/proc/{pid}/cmdline").read_text():
            os.kill(pid, signal.SIGTERM)


def data_plots() -> dict[str, str]:
    """dvc.yaml's plots over data: title -> the table it draws."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    return {
        title: next(iter(spec["y"]))
        for entry in plots
        if isinstance(entry, dict)
        for title, spec in entry.items()
        if isinstance(spec.get("y"), dict)
    }


def run_queue(repo: Path, jobs: int, timeout: float = 1200) -> dict[str, str]:
    """`dvc queue start -j jobs`, then wait until no experiment is queued or running: name -> status.

    The workers DVC starts are daemons that inherit `queue start`'s output: read through a pipe,
    it ends only when every worker has exited, and a worker that missed its shutdown (a race in
    DVC's temporary celery workers, seen once: it logged "shutting down due to empty queue" while
    its task still ran, then idled for ever) held the test. So the output goes to a file, and
    the workers are ended once the queue is done."""
    with open(repo.parent / "queue-start.log", "a") as log:
        subprocess.run(
            ["dvc", "queue", "start", "-j", str(jobs)], cwd=repo, env=repo_env(repo), stdout=log, stderr=log, check=True
        )
    deadline = time.monotonic() + timeout
    while True:
        rows = [line.split() for line in sh(repo, "dvc", "queue", "status").splitlines()[1:] if line.strip()]
        status = {
            row[1]: row[-1] for row in rows if len(row) >= 3 and row[-1] in ("Queued", "Running", "Success", "Failed")
        }
        if status and not {"Queued", "Running"} & set(status.values()):
            _end_workers(repo)
            return status
        assert time.monotonic() < deadline, f"the queue did not finish in {timeout} s: {status}"
        time.sleep(3)


def experiment_names(repo: Path) -> set[str]:
    """The experiments `dvc exp show --json` lists."""
    shown = json.loads(sh(repo, "dvc", "exp", "show", "--json", "--no-fetch"))
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("name"), str):
                found.add(node["name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(shown)
    return found


@pytest.fixture(scope="module")
def baseline(tiny_run, tmp_path_factory) -> Path:
    """The tiny default configuration run and committed with its dvc.lock: `main` of dvc exp show."""
    repo = copy_repo(tiny_run[0], tmp_path_factory.mktemp("experiments") / "repo")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "baseline")
    return repo


def test_the_plot_tables_are_tidy_and_in_git_beside_metrics(baseline):
    tracked = set(sh(baseline, "git", "ls-files", "reports").split())
    for title, table in data_plots().items():
        assert table in tracked, title  # so that `dvc plots diff main <exp>` has main's points
        header = (baseline / table).read_text().splitlines()[0].split(",")
        assert header[1] == "series" and len(header) == 3, (table, header)
    curves = (baseline / "reports/grid/plots/base_curves.csv").read_text().splitlines()
    steps = [int(line.split(",")[0]) for line in curves[1:] if line.split(",")[1] == "s0/baseB/r0"]
    assert steps and steps == sorted(steps) and steps[-1] > len(steps)  # the DVCLive step, not a row number


def test_queued_beta_sweeps_run_together_retrain_only_the_binary_study_and_diff_as_plots(baseline):
    repo = baseline
    sweeps = {"betas-0p3": "[0.0,0.3]", "betas-0p7": "[0.0,0.7]"}
    for name, betas in sweeps.items():
        sh(repo, "dvc", "exp", "run", "--queue", "-n", name, "-S", f"binary.betas={betas}")
    status = run_queue(repo, jobs=2)
    assert status == dict.fromkeys(sweeps, "Success"), status
    assert set(sweeps) <= experiment_names(repo)
    for name, betas in sweeps.items():
        ran = stages_run(sh(repo, "dvc", "queue", "logs", name))
        assert ran and {stage.split("@")[0] for stage in ran} <= BETA_STAGES, ran
        new_beta = betas.strip("[]").split(",")[1]
        trained = [s for s in ran if s.startswith("binary-")]
        assert trained and all(new_beta in s for s in trained), trained  # beta 0.0's nets were kept
    diff = json.loads(sh(repo, "dvc", "plots", "diff", "--json", *sweeps))["data"]
    assert not [title for title in diff if title.endswith(".csv")]  # each table drawn once, by its definition
    for title, table in data_plots().items():
        points = diff[title][0]["content"]["data"]["values"]
        assert {p["rev"] for p in points} == set(sweeps), (title, table)
    points = diff["Binary study, error against beta"][0]["content"]["data"]["values"]
    assert {(p["rev"], float(p["beta"])) for p in points} == {
        (n, float(b)) for n, s in sweeps.items() for b in s.strip("[]").split(",")
    }
    assert sh(repo, "git", "status", "--porcelain").strip() == ""  # the workspace is left as it was


def test_the_offline_plot_page_draws_without_a_network(baseline, tmp_path):
    if not shutil.which("npm"):
        pytest.skip("npm not found: make setup made no offline page")
    page = ROOT / ".venv/share/transferlab/dvc_plots.html"  # make setup's
    out = tmp_path / "plots"
    sh(baseline, "dvc", "plots", "show", "--html-template", str(page), "-o", str(out))
    html = (out / "index.html").read_text()
    assert not re.findall(r"<script[^>]+src=", html) and "cdn.jsdelivr" not in html
    assert "vegaEmbed(" in html and all(title in html for title in data_plots())


def test_a_moved_clone_still_draws_its_plots_offline(baseline, tmp_path):
    """.dvc/config.local names the page relative to .dvc/ (as `make setup` writes it): a clone
    moved elsewhere draws `dvc plots show` with it (an absolute path made DVC fail with a
    misleading "HTML template has to contain '{plot_divs}'")."""
    page = ROOT / ".venv/share/transferlab/dvc_plots.html"  # make setup's
    if not page.is_file():
        pytest.skip("make setup made no offline page (npm not found)")
    first = tmp_path / "first"
    shutil.copytree(baseline, first, symlinks=True)
    (first / ".venv/share/transferlab").mkdir(parents=True)
    shutil.copy(page, first / ".venv/share/transferlab/dvc_plots.html")
    sh(first, "dvc", "config", "--local", "plots.html_template", "../.venv/share/transferlab/dvc_plots.html")
    moved = tmp_path / "elsewhere/moved"
    moved.parent.mkdir()
    shutil.move(first, moved)
    assert str(first) not in (moved / ".dvc/config.local").read_text()
    sh(moved, "dvc", "plots", "show", "-o", "out")
    html = (moved / "out/index.html").read_text()
    assert not re.findall(r"<script[^>]+src=", html) and "vegaEmbed(" in html
    drawn = _screenshot(moved / "out/index.html", tmp_path / "page.png")
    assert drawn > 1000, drawn  # the curves' colours: Vega drew the plots (an undrawn page is text)


def _screenshot(page: Path, png: Path) -> int:
    """Open `page` offline in headless Chromium (Debian's package), save a screenshot, and count
    its strongly coloured pixels (Vega's series colours; text and axes are grey)."""
    from PIL import Image

    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("TRANSFERLAB_REQUIRE_CHROMIUM"):
            pytest.fail("chromium not found, and CI requires the browser check")
        pytest.skip("chromium not found (Debian's package): the page was checked as text only")
    offline = ["--host-resolver-rules=MAP * ~NOTFOUND", "--disable-background-networking", "--disable-quic"]
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            *offline,
            f"--user-data-dir={png.parent / 'profile'}",
            "--window-size=1200,1600",
            "--virtual-time-budget=10000",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    return int((rgb.max(axis=2) - rgb.min(axis=2) > 100).sum())


def _cifar_params(root: Path, **more) -> dict:
    cifar = {"data.dataset": "cifar10", "data.root": str(root), "data.verify": False, "binary.equal_halves": False}
    return tiny_params(**{**OFF, **cifar, **more})  # (5 classes in A: no equal halves)


def test_a_data_set_outside_the_repository_under_both_engines_and_a_queued_experiment(tmp_path):
    outside = tmp_path / "datasets/cifar"
    write_cifar(outside, "cifar10", per_class=8)
    repo = make_repo(tmp_path / "repo", _cifar_params(outside))
    sh(repo, "snakemake", "--cores", "2")
    assert "up to date" in sh(repo, "dvc", "status")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "baseline")
    # in a copy of the repository under .dvc/tmp: prepare reads the folder again, by its absolute path
    # (the experiment's target: prepare and what it needs, not the nets below it)
    sh(repo, "dvc", "exp", "run", "--queue", "-n", "five-per-class", "-S", "data.max_train_per_class=5", "prepare")
    assert run_queue(repo, jobs=1) == {"five-per-class": "Success"}
    log = sh(repo, "dvc", "queue", "logs", "five-per-class")
    assert "prepare" in stages_run(log) and "download" not in stages_run(log)


def test_a_data_set_inside_the_repository_stops_a_queued_experiment_with_one_line(tmp_path):
    def setup(repo):
        write_cifar(repo / "data/raw", "cifar10", per_class=8)
        with open(repo / ".gitignore", "a") as f:
            f.write("data/raw/\n")  # the download stage's output: DVC's (uncached), not git's

    repo = make_repo(tmp_path / "repo", _cifar_params(Path("data/raw")), setup)
    # (a dvc repro first changes nothing below: the experiment's copy lacks data/raw either way)
    sh(repo, "dvc", "exp", "run", "--queue", "-n", "five-per-class", "-S", "data.max_train_per_class=5")
    assert run_queue(repo, jobs=1) == {"five-per-class": "Failed"}
    errors = [line for line in sh(repo, "dvc", "queue", "logs", "five-per-class").splitlines() if "error:" in line]
    assert len(errors) == 1 and "outside the repository" in errors[0], errors
