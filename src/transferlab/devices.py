"""Device choice and GPU-slot leases.

Snakemake counts a `gpu` resource but never says which device a job gets. A training
command with `--device auto` therefore leases one GPU itself: a non-blocking `flock` on one
lock file per device in a fixed node-local folder, held until the process exits (the
kernel frees it on a crash), and `CUDA_VISIBLE_DEVICES` set before CUDA starts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO

import torch

# Fixed and node-local, not $TMPDIR: Snakemake gives every job its own TMPDIR.
DEFAULT_LOCK_DIR = Path(os.environ.get("TRANSFERLAB_LOCK_DIR", "/tmp/transferlab-gpu-locks"))
_held: list[IO] = []  # open lock files: the lease lives as long as the process


def gpu_count() -> int:
    """Number of GPUs on this node, without initialising CUDA (TRANSFERLAB_GPU_COUNT overrides)."""
    if "TRANSFERLAB_GPU_COUNT" in os.environ:
        return int(os.environ["TRANSFERLAB_GPU_COUNT"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def lease_gpu(count: int, lock_dir: Path = DEFAULT_LOCK_DIR, slots_per_gpu: int = 1, timeout_s: float = 3600.0) -> int:
    """Take a free slot on one of `count` GPUs; return the device index. Waits while all are busy."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        for slot in range(slots_per_gpu):
            for gpu in range(count):
                handle = open(lock_dir / f"gpu{gpu}.slot{slot}.lock", "w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                _held.append(handle)
                return gpu
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU slot in {lock_dir} after {timeout_s:.0f} s")
        time.sleep(0.5)


def choose_device(request: str, lock_dir: Path = DEFAULT_LOCK_DIR) -> torch.device:
    """'auto': a leased GPU, the scheduler's pinned GPU, or the CPU; else the named device."""
    if request != "auto":
        return torch.device(request)
    pinned = os.environ.get("SLURM_JOB_ID") and os.environ.get("CUDA_VISIBLE_DEVICES")
    if pinned:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    count = gpu_count()
    if count == 0:
        return torch.device("cpu")
    slots = int(os.environ.get("TRANSFERLAB_RUNS_PER_GPU", "1"))
    gpu = lease_gpu(count, lock_dir, slots)
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before the first CUDA call of this process
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
