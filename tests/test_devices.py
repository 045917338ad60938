"""GPU-slot leases, with a faked device count: no two holders share a device; a killed
holder's device is free again (the kernel drops its flock). CPU-core leases: commands side by
side wait for free cores among those they may run on."""

import os
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from transferlab.devices import (
    LeaseError,
    checked_lock_dir,
    choose_device,
    cpu_threads,
    lease_cores,
    lease_gpu,
    visible_devices,
)

from second_user import SETPRIV, as_nobody, needs_second_user, shared_tmp_name

SRC = Path(__file__).resolve().parents[1] / "src"

HOLDER = """
import os, sys, time
from transferlab.devices import choose_device
choose_device("auto")
print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(600)
"""


def _holder(env):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_four_concurrent_leases_get_four_devices_and_a_killed_one_is_freed(tmp_path):
    env = {**os.environ, "TRANSFERLAB_GPU_COUNT": "4", "TRANSFERLAB_LOCK_DIR": str(tmp_path)}
    env.pop("SLURM_JOB_ID", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    holders = [_holder(env) for _ in range(4)]
    try:
        assert sorted(gpu for _, gpu in holders) == ["0", "1", "2", "3"]
        victim, gpu = holders[2]
        victim.kill()
        victim.wait()
        newcomer, got = _holder(env)
        holders.append((newcomer, got))
        assert got == gpu
    finally:
        for proc, _ in holders:
            proc.kill()
            proc.wait()


def test_a_fifth_lease_waits_for_a_free_device(tmp_path):
    env = {**os.environ, "TRANSFERLAB_GPU_COUNT": "1", "TRANSFERLAB_LOCK_DIR": str(tmp_path)}
    first = _holder(env)
    second = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        assert second.poll() is None  # still waiting, holds nothing
        first[0].kill()
        first[0].wait()
        assert second.stdout.readline().strip() == "0"
    finally:
        for proc in (first[0], second):
            proc.kill()
            proc.wait()


CORE_HOLDER = """
import os, sys, time, torch
from transferlab.devices import cpu_threads
if len(sys.argv) > 2:
    os.sched_setaffinity(0, [int(sys.argv[2])])
with cpu_threads(int(sys.argv[1]), torch.device("cpu")):
    print(torch.get_num_threads(), flush=True)
    time.sleep(600)
"""


def _core_holder(env, threads: int, core: int | None = None):
    args = [sys.executable, "-c", CORE_HOLDER, str(threads), *([] if core is None else [str(core)])]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_cpu_command_waits_while_the_cores_are_leased_and_keeps_its_thread_count(tmp_path):
    """A holder of every core (more threads than cores): a one-thread command beside it waits,
    saying so in one line, and starts when the holder ends; the holder computes with its own
    thread count, not the number of cores it could lease."""
    env = {**os.environ, "TRANSFERLAB_LOCK_DIR": str(tmp_path)}
    many = len(os.sched_getaffinity(0)) + 1
    first = _core_holder(env, many)
    try:
        assert first.stdout.readline().strip() == str(many)
        second = _core_holder(env, 1)
        said = select.select([second.stderr], [], [], 60)[0]  # (however long its start takes on a busy machine)
        assert said and "waiting for 1 free CPU core(s)" in second.stderr.readline()
        assert second.poll() is None  # waiting
        first.kill()
        first.wait()
        assert second.stdout.readline().strip() == "1"
        second.kill()
        _, err = second.communicate()
        assert "waiting" not in err, err  # said once
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()


def test_cores_are_given_back_when_the_block_ends_and_a_gpu_command_leases_none(tmp_path):
    cpu = torch.device("cpu")
    for _ in range(2):  # in-process, as the tests run commands: the second finds them free
        with cpu_threads(len(os.sched_getaffinity(0)), cpu, tmp_path):
            assert torch.get_num_threads() == len(os.sched_getaffinity(0))
    env = {**os.environ, "TRANSFERLAB_LOCK_DIR": str(tmp_path)}
    holder = _core_holder(env, len(os.sched_getaffinity(0)))
    try:
        holder.stdout.readline()
        t0 = time.monotonic()
        with cpu_threads(1, torch.device("cuda"), tmp_path):  # (no CUDA call: only its type is read)
            assert torch.get_num_threads() == 1
        assert time.monotonic() - t0 < 1
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_commands_on_different_cores_do_not_wait_for_each_other(tmp_path):
    """Two commands of two threads, each allowed one core (two SLURM jobs' own cores): each
    leases its own core and neither waits."""
    env = {**os.environ, "TRANSFERLAB_LOCK_DIR": str(tmp_path)}
    a, b = sorted(os.sched_getaffinity(0))[:2]
    holders = [_core_holder(env, 2, a), _core_holder(env, 2, b)]
    try:
        assert [h.stdout.readline().strip() for h in holders] == ["2", "2"]
    finally:
        for proc in holders:
            proc.kill()
            proc.wait()


def test_without_gpus_auto_is_the_cpu(monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_GPU_COUNT", "0")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert choose_device("auto") == torch.device("cpu")
    assert choose_device("cpu") == torch.device("cpu")


def test_packing_spreads_runs_over_devices_first(tmp_path):
    env = {
        **os.environ,
        "TRANSFERLAB_GPU_COUNT": "2",
        "TRANSFERLAB_RUNS_PER_GPU": "2",
        "TRANSFERLAB_LOCK_DIR": str(tmp_path),
    }
    env.pop("SLURM_JOB_ID", None)
    holders = []
    try:
        for _ in range(4):
            holders.append(_holder(env))
        assert [gpu for _, gpu in holders] == ["0", "1", "0", "1"]
    finally:
        for proc, _ in holders:
            proc.kill()
            proc.wait()


def test_a_slurm_pinned_device_is_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv("TRANSFERLAB_GPU_COUNT", "8")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device("auto", lock_dir=tmp_path).type == expected
    assert list(tmp_path.iterdir()) == []  # no lease taken


def test_leases_stay_among_the_devices_the_user_made_visible(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("TRANSFERLAB_GPU_COUNT", "8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    choose_device("auto", lock_dir=tmp_path)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"  # not 0: someone else's device
    assert [p.name for p in tmp_path.iterdir()] == ["gpu3.slot0.lock"]
    assert visible_devices(8) == ["3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,-1,7")  # CUDA stops at the first invalid entry
    assert visible_devices(8) == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert choose_device("auto", lock_dir=tmp_path) == torch.device("cpu")


def test_a_private_lock_folder_is_made_0700_and_one_writable_by_others_is_refused(tmp_path):
    made = checked_lock_dir(tmp_path / "locks")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    with pytest.raises(LeaseError, match="writable by others"):
        checked_lock_dir(loose)


@needs_second_user
def test_a_lock_folder_planted_by_another_user_is_refused():
    for mode in ("777", "1777"):  # open, or posing as a shared folder
        with shared_tmp_name() as planted:
            as_nobody("mkdir", "-m", mode, str(planted))
            with pytest.raises(LeaseError, match=r"owned by uid \d+, not by you") as err:
                lease_gpu(["0"], planted)
            assert "\n" not in str(err.value)
            assert list(planted.iterdir()) == []  # nothing of ours left in their folder


@needs_second_user
def test_a_link_planted_in_a_shared_folder_is_not_followed():
    with shared_tmp_name() as shared, shared_tmp_name() as victim:
        shared.mkdir()
        shared.chmod(0o1777)  # made for sharing, by root
        victim.write_text("precious\n")
        as_nobody("ln", "-s", str(victim), str(shared / "gpu0.slot0.lock"))
        as_nobody("mkfifo", str(shared / "gpu1.slot0.lock"))
        with pytest.raises(LeaseError, match="a symbolic link; refusing") as err:
            lease_gpu(["0"], shared)
        assert "\n" not in str(err.value)
        with pytest.raises(LeaseError, match="not a regular file"):
            lease_gpu(["1"], shared)
        as_nobody("ln", "-s", str(victim), str(shared / "cores.gate.lock"))
        with pytest.raises(LeaseError, match="a symbolic link; refusing") as err:
            lease_cores(1, shared)
        assert "\n" not in str(err.value)
        assert victim.read_text() == "precious\n"


@needs_second_user
def test_two_users_lease_different_devices_from_a_shared_folder():
    with shared_tmp_name() as shared:
        shared.mkdir()
        shared.chmod(0o1777)
        env = {
            "PATH": os.environ["PATH"],
            "TRANSFERLAB_GPU_COUNT": "2",
            "TRANSFERLAB_LOCK_DIR": str(shared),
            "HOME": "/nonexistent",
        }
        proc = subprocess.Popen(
            [*SETPRIV, sys.executable, "-c", HOLDER],
            env={**env, "PYTHONPATH": str(SRC)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            theirs = proc.stdout.readline().strip()
            assert theirs == "0", proc.stderr.read() if proc.poll() is not None else theirs
            assert lease_gpu(["0", "1"], shared) == "1"  # their lock file opened (not created) and respected
        finally:
            proc.kill()
            proc.wait()


@needs_second_user
def test_a_lock_folder_swapped_for_a_link_while_a_job_waits_gives_no_second_lease():
    """The folder is opened once: a job waiting for a busy slot keeps looking in the folder it
    checked, not in whatever another user puts at its path meanwhile."""
    import threading

    with shared_tmp_name() as parent:
        as_nobody("mkdir", "-m", "755", str(parent))  # theirs: they may rename what is in it
        locks, theirs = parent / "locks", parent / "theirs"
        as_nobody("mkdir", "-m", "1777", str(theirs))
        env = {**os.environ, "TRANSFERLAB_GPU_COUNT": "1", "TRANSFERLAB_LOCK_DIR": str(locks)}
        env.pop("SLURM_JOB_ID", None)
        env.pop("CUDA_VISIBLE_DEVICES", None)
        holder, gpu = _holder(env)  # our first job holds the one GPU
        try:
            assert gpu == "0"
            outcome = {}

            def second_job():
                try:
                    outcome["device"] = lease_gpu(["0"], locks, timeout_s=3)
                except LeaseError as err:
                    outcome["error"] = str(err)

            waiting = threading.Thread(target=second_job)
            waiting.start()
            time.sleep(1)
            as_nobody("mv", str(locks), str(parent / "old"))
            as_nobody("ln", "-s", str(theirs), str(locks))
            waiting.join()
            assert "device" not in outcome and "no free GPU slot" in outcome["error"]
            assert list(theirs.iterdir()) == []  # no lease taken in their folder
        finally:
            holder.kill()
            holder.wait()
