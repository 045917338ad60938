"""GPU-slot leases, with a faked device count: no two holders share a device; a killed
holder's device is free again (the kernel drops its flock)."""

import os
import subprocess
import sys
import time

import torch

from transferlab.devices import choose_device

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


def test_without_gpus_auto_is_the_cpu(monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_GPU_COUNT", "0")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert choose_device("auto") == torch.device("cpu")
    assert choose_device("cpu") == torch.device("cpu")


def test_packing_spreads_runs_over_devices_first(tmp_path):
    env = {**os.environ, "TRANSFERLAB_GPU_COUNT": "2", "TRANSFERLAB_RUNS_PER_GPU": "2", "TRANSFERLAB_LOCK_DIR": str(tmp_path)}
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
