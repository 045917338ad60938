"""End to end: the real `dvc repro`, `dvc exp run` and `snakemake` on a shrunken configuration
in temporary git repositories. DVC is the one judge of what is up to date: for every kind of
change both engines see the same stale stages, after either one the other has nothing to do,
only what ran is recorded, and both give the same numbers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import run_once, tiny_params
from pipeline import copy_repo, make_repo, repo_env, resolved_stages, sh, stages_run

pytestmark = pytest.mark.slow
STUDIES = ("grid", "binary", "strategies", "analysis")


def dvc_stale(repo: Path) -> set[str]:
    return set(json.loads(sh(repo, "dvc", "status", "--json")))


def snakemake_plan(repo: Path) -> tuple[set[str], set[str]]:
    """What `snakemake -n` plans: the stages DVC found stale, and all it would schedule."""
    log = sh(repo, "snakemake", "-n")
    if "Nothing to be done" in log:
        return set(), set()
    plan = json.loads(next((repo / ".snakemake/transferlab").glob("*/plan.json")).read_text())
    return {s["name"] for s in plan["stages"] if s["stale"]}, {s["name"] for s in plan["stages"]}


def recorded(log: str) -> set[str]:
    """The stages a Snakemake log says were recorded in dvc.lock."""
    return set(re.findall(r"transferlab: (\S+) recorded in dvc.lock", log))


def params_of_every_run_match(repo: Path) -> None:
    expected = yaml.safe_load((repo / "params.yaml").read_text())
    for path in (repo / "data/runs").rglob("metrics.json"):
        if path.parent.name == "live":
            continue  # DVCLive's own
        got = json.loads(path.read_text())["params"]
        assert got["model"] == expected["model"] and got["transfer"]["layers"] == expected["transfer"]["layers"], path


@pytest.fixture(scope="module")
def dvc_repo(tiny_run, tmp_path_factory) -> tuple[Path, str]:
    """The tiny configuration after `dvc repro` (a copy of the session's run), and its log."""
    repo, log = tiny_run
    return copy_repo(repo, tmp_path_factory.mktemp("engines") / "dvc"), log


def test_dvc_repro_makes_the_figure_table_and_metrics(dvc_repo):
    repo, log = dvc_repo
    # code, plan, download, settings, prepare, split, bases, 4 treatments x 2 layers, control x 2, 2 A' nets,
    # 2 fine-tunings, 2 strategies, 1 scratch net, 1 cut, features, analyze, a report per study (the size
    # study's has no runs)
    assert len(stages_run(log)) == 1 + 1 + 1 + 1 + 1 + 1 + 2 + 4 * 2 + 2 + 2 + 2 + 2 + 1 + 1 + 2 + 5
    figures = (
        "transfer",
        "transfer_relative",
        "binary_beta",
        "binary_tradeoff",
        "binary_curves",
        "probe",
        "cka",
        "estimates",
        "strategies",
        "cut",
    )
    for fig in (f"{name}.png" for name in figures):
        assert (repo / "reports/figures" / fig).read_bytes()[:4] == b"\x89PNG"
    df = pd.concat([pd.read_parquet(repo / f"reports/{s}/results.parquet") for s in STUDIES], ignore_index=True)
    runs = df[~df.study.isin(["analysis", "binary_curves"])]
    assert len(runs) == 12 + 4 + 4  # grid, binary, strategies (2, the scratch net and a cut net)
    assert set(runs.treatment) == {
        "base",
        "BnB",
        "AnB",
        "BnB+",
        "AnB+",
        "random",
        "binaryA",
        "binaryB",
        "strategy:classifier",
        "strategy:finetune_top",
        "strategy:scratch",
        "cut",
    }
    take_home = (repo / "reports/tables/take_home.md").read_text()
    assert "**similar**" in take_home and "| finetune_top | " in take_home.split("## What transfer buys")[1]
    assert "| 2 | conv2 |" in (repo / "reports/tables/cut.md").read_text()
    analysis = df[df.study == "analysis"]
    # per source (baseA, baseB, the A' net of beta 0.5) and unit: 2 probes and 3 estimates, and at the
    # DeCAF table's units 5, 6, 7 the 2 probes with dropout; CKA 7 x 7; CKA to baseB for 10 transfer nets x 7 units
    assert len(analysis) == 3 * 7 * 5 + 3 * 3 * 2 + 7 * 7 + 10 * 7 and "A'0.5h1" in set(analysis.source)
    assert set(analysis.method) == {"probe_logreg", "probe_svm", "logme", "leep", "hscore", "cka", "cka_to_base"} | {
        "probe_logreg_dropout",
        "probe_svm_dropout",
    }
    decaf = (repo / "reports/tables/decaf.md").read_text()
    assert "| LogReg with dropout | " in decaf and "## A'0.5h1: random splits" in decaf
    metrics = {s: json.loads((repo / f"reports/{s}/metrics.json").read_text()) for s in STUDIES}
    metrics = {**metrics.pop("grid"), **metrics}
    strings = [k for k, v in pd.json_normalize(metrics).iloc[0].items() if isinstance(v, str)]
    assert not strings, strings  # dvc exp show compares numbers
    assert "spearman_logme_vs_probe" in metrics["analysis"] and "b_gain_ci95_low" in metrics["binary"]["beta_0p5_h1"]
    assert {"base_top1", "anb_plus_gain", "anb_drop_top", "bnb_dip", "random_drop_top"} <= set(metrics)
    assert {"b_gain", "b_gain_ci95_low", "b_gain_count", "a_loss", "b_gain_by_kind", "b_gain_by_split"} <= set(
        metrics["binary"]["beta_0p5_h1"]
    )
    assert metrics["binary"]["beta_0p5_h1"]["b_gain_ci95_low"] is None  # one pair: no interval
    run = json.loads((repo / "data/runs/grid/s0/A7B+/r0/metrics.json").read_text())
    assert (
        run["run_id"] == "s0/A7B+/r0"
        and run["params"]["transfer"]["layers"] == [1, 7]
        and not {"git_revision", "wall_time_s"} & set(run)  # measurements: kept apart
    )
    timed = json.loads((repo / "data/measurements/s0/A7B+/r0.json").read_text())
    head = sh(repo, "git", "rev-parse", "HEAD").strip()
    assert timed["git_revision"] == head and timed["wall_time_s"] > 0  # the commit; dvc.lock's rewrite is not "dirty"
    assert run["threads"] == 1 and run["params"]["threads"] == 1 and len(run["fingerprint"]) == 64
    assert (repo / "data/runs/grid/s0/A7B+/r0/live/plots/metrics/test_top1.tsv").is_file()  # DVCLive, for dvc plots


def test_after_dvc_snakemake_has_nothing_to_do_and_a_finished_run_is_left_alone(dvc_repo):
    repo, _ = dvc_repo
    assert "Nothing to be done" in sh(repo, "snakemake", "-n")
    metrics = repo / "data/runs/grid/s0/baseA/r0/metrics.json"
    before = metrics.read_bytes()
    said = sh(repo, "transferlab", "train", "s0/baseA/r0", "--device", "cpu")
    assert (
        said.strip()
        == "s0/baseA/r0: up to date (its outputs were made by this code from these inputs and params); --force trains it again"
    )
    assert metrics.read_bytes() == before


def test_an_override_equal_to_the_shared_value_reruns_no_net(dvc_repo):
    """Stages see effective settings: spelling out `transfer.epochs` with the value it already
    takes from `train.epochs` changes the settings stage's params but not its outputs."""
    repo, _ = dvc_repo
    params = repo / "params.yaml"
    before = params.read_text()
    changed = yaml.safe_load(before)
    changed["transfer"]["epochs"] = changed["train"]["epochs"]
    try:
        params.write_text(yaml.safe_dump(changed))
        assert stages_run(sh(repo, "dvc", "repro")) == {"settings"}
    finally:
        params.write_text(before)
        sh(repo, "dvc", "repro", "settings")


def _edit_params(repo: Path) -> None:
    """A value that the feature stage reads from params.yaml itself (every net's own change:
    trainer-code below)."""
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["analysis"]["data_draws"] = [0, 1]
    (repo / "params.yaml").write_text(yaml.safe_dump(p))


def _edit_code(path: str):
    def edit(repo: Path) -> None:
        with open(repo / path, "a") as f:
            f.write("\nEDITED = True  # code that runs: a changed behaviour, as far as a hash can tell\n")

    return edit


def _edit_docs(repo: Path) -> None:
    """Docstrings, a comment and formatting: what the code does is the same."""
    for path in ("src/transferlab/train.py", "src/transferlab/data/synthetic.py"):
        text = (repo / path).read_text()
        (repo / path).write_text(text.replace('"""', '"""Edited words. ', 1) + "\n# a comment\n\n")


def _set_workers(repo: Path) -> None:
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["data"]["workers"] = 2  # read by folder data sets only: the embedded one ignores it
    (repo / "params.yaml").write_text(yaml.safe_dump(p))


def _edit_split(repo: Path) -> None:
    split = repo / "data/splits/s0.json"
    split.write_text(split.read_text() + "\n")  # same split, other bytes: DVC sees a modified output


def _delete_run(repo: Path) -> None:
    import shutil

    shutil.rmtree(repo / "data/runs/grid/s0/A7B+/r0")


TRAINING = ("train-base@", "transfer@", "finetune@", "control@", "binary-", "strategy@", "cut@")
CHANGES = {
    # change: (edit, the engine that catches up, the stages that must run, stages that must not)
    "params-value": (
        _edit_params,
        "snakemake",
        {"features@0-0", "analyze@0-0", "report-analysis"},
        {*TRAINING, "settings", "split@0", "report-grid"},
    ),
    "trainer-code": (
        _edit_code("src/transferlab/train.py"),
        "snakemake",
        {"code", "transfer@0-A-B-7-0", "features@0-0"},
        {"settings", "download"},
    ),
    "report-code": (
        _edit_code("src/transferlab/studies/grid/report.py"),
        "dvc",
        {"code", "report-grid"},
        {*TRAINING, "report-binary", "report-strategies"},
    ),
    "docstrings-and-comments": (_edit_docs, "snakemake", {"code"}, {*TRAINING, "prepare", "split", "report-"}),
    "unused-data-key": (_set_workers, "dvc", {"prepare"}, {*TRAINING, "split", "features", "report-"}),
    "input-data-file": (_edit_split, "snakemake", {"split@0"}, set(TRAINING) | {"report-"}),
    "deleted-output": (
        _delete_run,
        "snakemake",
        {"finetune@0-A-B-7-0"},  # (report-grid after it only if the retrained run's bytes differ)
        {"finetune@0-A-B-1-0", "train-base@0-A-0"},
    ),
}


@pytest.fixture(scope="module")
def engine_repo(tiny_run, tmp_path_factory) -> Path:
    """A repository where dvc repro ran: the changes below are made one after the other."""
    return copy_repo(tiny_run[0], tmp_path_factory.mktemp("changes") / "repo")


@pytest.mark.parametrize("change", list(CHANGES))
def test_both_engines_judge_a_change_alike_and_either_catches_up(engine_repo, change):
    repo = engine_repo
    edit, engine, must, must_not = CHANGES[change]
    edit(repo)
    stale = dvc_stale(repo)
    planned_stale, planned = snakemake_plan(repo)
    assert stale and planned_stale == stale, (stale, planned_stale)
    if engine == "snakemake":
        # (a stage whose inputs come out the same is not rerun: DVC asked again, as dvc repro does)
        ran = recorded(sh(repo, "snakemake", "--cores", "2", "--resources", "gpu=2"))
        assert ran <= planned
    else:
        ran = stages_run(sh(repo, "dvc", "repro"))
    assert must <= ran, ran
    assert not [r for r in ran if r.startswith(tuple(must_not))], ran
    assert dvc_stale(repo) == set()
    assert "Nothing to be done" in sh(repo, "snakemake", "-n")
    params_of_every_run_match(repo)


def test_a_subset_run_records_only_what_it_ran(engine_repo):
    """Snakemake asked for one stage leaves every other stale stage stale (it used to commit
    them all with --force)."""
    repo = engine_repo
    p = yaml.safe_load((repo / "params.yaml").read_text())
    before, p["model"]["dropout"] = p["model"]["dropout"], 0.3
    (repo / "params.yaml").write_text(yaml.safe_dump(p))
    stale = dvc_stale(repo)
    assert {"train-base@0-A-0", "train-base@0-B-0"} <= stale
    ran = recorded(sh(repo, "snakemake", "--cores", "1", "train_base_0_A_0"))
    assert ran == {"train-base@0-A-0"}
    after = dvc_stale(repo)  # the rest stays stale (and what reads baseA's new outputs is stale now)
    assert "train-base@0-A-0" not in after and stale - {"train-base@0-A-0"} <= after
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["train-base@0-B-0"]["params"]["params.yaml"]["model"]["dropout"] == before  # not run


def test_an_interrupted_snakemake_leaves_the_rest_to_dvc_and_a_second_engine_is_refused(engine_repo):
    repo = engine_repo
    # The strategies study's nets stale (settings, 3 nets, the reports after them); Snakemake's
    # process group stopped (SIGSTOP) while the checks below start two more engines, so it holds
    # its locks and cannot finish a stage meanwhile.
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["strategies"]["train"]["epochs"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(p))
    log_path = repo.parent / "interrupted.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["snakemake", "--cores", "1"],
            cwd=repo,
            env=repo_env(repo),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Ctrl-C as at a terminal: a shell starts background commands with SIGINT ignored,
            # and that is inherited (a CI run started so saw Snakemake and its jobs ignore it).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 240
        # two stages finished (their records may wait: the recorder writes dvc.lock in batches)
        while len(list((repo / ".snakemake/transferlab").glob("*/*.finished"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGSTOP)  # paused, its locks held: it cannot finish during the checks
        try:
            # a second engine while Snakemake holds the repository: refused, in one line
            other = subprocess.run(["snakemake", "-n"], cwd=repo, env=repo_env(repo), capture_output=True, text=True)
            refusal = [line for line in (other.stdout + other.stderr).splitlines() if "one engine at a time" in line]
            assert other.returncode != 0 and len(refusal) == 1 and "in use by snakemake (pid" in refusal[0], (
                other.stderr[-2000:]
            )
            dvc = subprocess.run(["dvc", "repro"], cwd=repo, env=repo_env(repo), capture_output=True, text=True)
            assert dvc.returncode != 0 and "Unable to acquire lock" in dvc.stderr
        finally:
            os.killpg(proc.pid, signal.SIGCONT)
        ctrl_c(proc, log_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finished = recorded(log_path.read_text())
    left = dvc_stale(repo)
    assert finished and left and not (finished & left), (finished, left)
    ran = stages_run(sh(repo, "dvc", "repro"))
    assert ran and not (ran & finished), (ran, finished)  # nothing that finished is run again
    assert dvc_stale(repo) == set()


def ctrl_c(proc: subprocess.Popen, log_path: Path) -> None:
    """Ctrl-C to the resumed group, pressed again while Snakemake has not taken it: its asyncio
    handler raises KeyboardInterrupt, which Python drops when it lands in a weakref callback
    ("Exception ignored in ... WeakSet", seen once in CI, the run then went on to the end)."""
    taken = ("Terminating processes on user request", "Cancelling snakemake on user request")
    deadline = time.monotonic() + 120
    while proc.poll() is None:
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        if not any(t in log_path.read_text() for t in taken):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(scope="session")
def snakemake_repo(tmp_path_factory) -> Path:
    """The tiny configuration run by Snakemake from scratch, once (shared by the workers)."""

    def build(folder: Path) -> None:
        sh(make_repo(folder / "repo", tiny_params()), "snakemake", "--cores", "2", "--resources", "gpu=2")

    return run_once(tmp_path_factory, "snakemake", build) / "repo"


def test_both_engines_see_the_same_jobs(tmp_path):
    repo = make_repo(tmp_path / "fresh", tiny_params())
    dvc_names = {s.name for s in resolved_stages(repo)}
    stale, planned = snakemake_plan(repo)
    assert stale == planned == dvc_names  # a fresh repository: everything is stale


def test_after_snakemake_dvc_status_is_clean_and_the_numbers_are_dvcs(snakemake_repo, dvc_repo, tmp_path):
    repo = copy_repo(snakemake_repo, tmp_path / "repo")  # (the engines below write in it; another worker copies it)
    engine = json.loads(next((repo / ".snakemake/transferlab").glob("*/engine.json")).read_text())
    assert engine["recorded"] == engine["planned"] == len(resolved_stages(repo))
    assert (repo / "reports/figures/transfer.png").is_file() and (repo / "reports/figures/binary_beta.png").is_file()
    assert dvc_stale(repo) == set()
    assert "Nothing to be done" in sh(repo, "snakemake", "-n")
    assert stages_run(sh(repo, "dvc", "repro")) == set()
    # Same inputs, same bytes: two repositories, two engines, every output's hash the same.
    ours, theirs = (yaml.safe_load((r / "dvc.lock").read_text())["stages"] for r in (repo, dvc_repo[0]))
    assert ours == theirs
    # The same thread count under both engines (params.yaml `threads`): the same numbers.
    for study in STUDIES:
        ours, theirs = (pd.read_parquet(r / f"reports/{study}/results.parquet") for r in (repo, dvc_repo[0]))
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


IMPORTS = """
import json, sys
sys.argv = ["transferlab", *sys.argv[1:]]
from transferlab.cli import run_app
code = run_app()
names = sorted(m.__file__ for n, m in list(sys.modules.items()) if n.split(".")[0] == "transferlab" and getattr(m, "__file__", None))
print("IMPORTED " + json.dumps(names))
sys.exit(code)
"""


def test_every_stage_depends_on_the_code_its_command_imports(snakemake_repo, tmp_path):
    """One stage of each kind runs its command again (its outputs removed first, as the engines
    do); every project file it imported must be in its command's code file, a dep of the stage."""
    repo = copy_repo(snakemake_repo, tmp_path / "repo")
    kinds: dict[str, object] = {}
    for stage in resolved_stages(repo):
        kinds.setdefault(stage.name.split("@")[0], stage)
    for stage in kinds.values():
        words = stage.cmd.split()
        command = f"report-{words[2]}" if words[1] == "report" else words[1]
        code_deps = [d for d in stage.deps if d.startswith("data/code/")]
        if command == "code":
            assert stage.deps == ("src/transferlab",)
            continue
        assert code_deps == [f"data/code/{command}.json"], stage.name
        for out in stage.outs:
            if (repo / out).is_file() and not stage.name.startswith("download"):
                (repo / out).unlink()
        proc = subprocess.run(
            [sys.executable, "-c", IMPORTS, *stage.cmd.split()[1:]],
            cwd=repo,
            env=repo_env(repo),
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        imported = json.loads(proc.stdout.rsplit("IMPORTED ", 1)[1])
        listed = json.loads((repo / code_deps[0]).read_text())["files"]
        package = repo / "src/transferlab"
        missing = [f for f in imported if str(Path(f).relative_to(package)) not in listed]
        assert imported and not missing, (stage.name, missing)


def test_results_travel_through_a_remote_and_a_configuration_run_before_is_restored(dvc_repo, tmp_path):
    """`dvc push` to a shared remote (a local folder here), a fresh clone, `dvc pull`: clean,
    nothing trains. An experiment, then back to the committed params: restored from DVC's
    run-cache (pushed and pulled with the results), not trained again."""
    repo, _ = dvc_repo
    remote = tmp_path / "remote"
    sh(repo, "dvc", "remote", "add", "-d", "-f", "shared", str(remote))
    with open(repo / ".gitignore", "a") as ignore:  # as the project's: data.root's originals are in neither git
        ignore.write("/data/raw/\n")  # nor DVC's cache (the download stage's `cache: false`)
    sh(repo, "git", "rm", "-rq", "--cached", "--ignore-unmatch", "data/raw")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "results")
    sh(repo, "dvc", "push", "--run-cache")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    sh(clone, sys.executable, "workflow/site_cache.py")
    sh(clone, "dvc", "pull", "--run-cache")
    assert dvc_stale(clone) == {"download", "prepare"}  # the originals' check and the stage that reads them
    assert stages_run(sh(clone, "dvc", "repro")) == {"download"}  # the same bytes: nothing below it reruns
    assert dvc_stale(clone) == set()
    log = sh(clone, "dvc", "exp", "run", "-n", "beta-0p3", "-S", "binary.betas=[0.0,0.3]")
    assert {s for s in stages_run(log) if s.startswith("binary-")} and not {
        s for s in stages_run(log) if s.startswith(("train-base", "transfer@", "finetune@", "control@"))
    }
    sh(clone, "git", "checkout", "params.yaml")
    log = sh(clone, "dvc", "exp", "run")
    assert not [s for s in stages_run(log) if s.startswith(TRAINING)], log[-3000:]  # from the run-cache
    assert dvc_stale(clone) == set()
    # An experiment travels too: its git refs to the git remote, its outputs to DVC's.
    sh(clone, "dvc", "exp", "push", "origin", "beta-0p3")
    other = tmp_path / "other"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(other))
    sh(other, sys.executable, "workflow/site_cache.py")
    sh(other, "dvc", "exp", "pull", "origin", "beta-0p3")
    sh(other, "dvc", "exp", "apply", "beta-0p3")
    assert dvc_stale(other) == {"download", "prepare"}  # its outputs came with it: only the originals' check
    assert yaml.safe_load((other / "params.yaml").read_text())["binary"]["betas"] == [0.0, 0.3]
