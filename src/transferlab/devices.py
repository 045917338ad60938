"""Device choice, GPU-slot leases and CPU-core leases.

Snakemake counts a `gpu` resource but never says which device a job gets. A training
command with `--device auto` therefore leases one GPU itself: a non-blocking `flock` on one
lock file per device and slot, held until the process exits (the kernel frees it on a
crash), and `CUDA_VISIBLE_DEVICES` narrowed to that device before CUDA starts. It leases only
among the devices the user already made visible.

A command that computes on the CPU leases as many cores as it has threads (params.yaml
`threads`; all of its cores if it has fewer), among the cores it may run on (its affinity:
a SLURM job's own), one lock file per core: commands started side by side by any engine
(`dvc queue start -j 2`, Snakemake with more `--cores` than the machine has, two terminals)
wait for free cores instead of sharing them, and compute with their own thread count, so
their numbers stay the same. A waiting command takes a gate lock first, so that one asking for
several cores is not starved by a stream of one-core runs.

Where the lock files live (a shared machine: nothing in /tmp is trusted unchecked):
  - by default a private folder, /tmp/transferlab-locks-<uid>: made 0700 if absent, and
    refused unless it is a real folder owned by this user and writable by nobody else. It
    coordinates one user's jobs.
  - TRANSFERLAB_LOCK_DIR names another: the user's own (checked the same way), or a folder
    made for sharing between users, which must be sticky (chmod 1777) and owned by root or by
    this user. Every user's jobs then see each other's leases.
The folder is opened once (not through a link) and checked through its descriptor; lock files
are opened relative to it, without following links and without truncation, and must be regular
files; any refusal is one line (LeaseError, an InputError).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from transferlab.errors import InputError

LOCK_DIR_ENV = "TRANSFERLAB_LOCK_DIR"
_held: list[int] = []  # open lock-file descriptors: the lease lives as long as the process


class LeaseError(InputError):
    """A lock folder or lock file that is not safe to use."""


def default_lock_dir() -> Path:
    """Fixed and node-local, not $TMPDIR: Snakemake gives every job its own TMPDIR."""
    return Path(os.environ.get(LOCK_DIR_ENV) or f"/tmp/transferlab-locks-{os.getuid()}")


def open_lock_dir(path: Path) -> int:
    """A descriptor of the lock folder `path`, made private if absent; refused unless it is
    this user's private folder or a sticky folder made for sharing (owned by root or this user).
    Opened once, never through a link, and checked through the descriptor: lock files are then
    opened relative to it, so the folder cannot be swapped for another while a job waits."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as err:
        raise LeaseError(
            f"lock folder {path}: cannot create it ({err.strerror}); set {LOCK_DIR_ENV} to a folder of yours"
        ) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise LeaseError(
            f"lock folder {path}: not a real folder (a link or a file); remove it or set {LOCK_DIR_ENV}"
        ) from None
    try:
        _check_lock_dir(path, os.fstat(fd))
    except LeaseError:
        os.close(fd)
        raise
    return fd


def _check_lock_dir(path: Path, st: os.stat_result) -> None:
    uid = os.getuid()
    if st.st_mode & stat.S_ISVTX and st.st_uid in (0, uid):
        return  # made for sharing: the sticky bit keeps others' lock files out of reach
    if st.st_uid != uid:
        raise LeaseError(
            f"lock folder {path}: owned by uid {st.st_uid}, not by you (uid {uid}) and not a shared sticky folder; remove it or set {LOCK_DIR_ENV}"
        )
    if st.st_mode & 0o022:
        raise LeaseError(
            f"lock folder {path}: writable by others (mode {stat.S_IMODE(st.st_mode):o}); chmod 700 it, or 1777 to share it"
        )


def checked_lock_dir(path: Path) -> Path:
    """`path`, once `open_lock_dir` accepts it."""
    os.close(open_lock_dir(path))
    return path


def open_lock_file(dir_fd: int, name: str, shown: Path) -> int:
    """A descriptor of the lock file `name` in the open lock folder, created if absent
    (readable by all, so that a shared folder's users can lock it too); never through a link,
    never truncated. `shown`: its path, for messages."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a planted FIFO cannot hang us
    try:
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            try:
                fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
                os.fchmod(fd, 0o644)
            except FileExistsError:
                fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as err:
        why = "a symbolic link" if err.errno == errno.ELOOP else err.strerror
        raise LeaseError(f"lock file {shown}: {why}; refusing to use it") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LeaseError(f"lock file {shown}: not a regular file; refusing to use it")
    return fd


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


def visible_devices(count: int) -> list[str]:
    """The devices this process may use: CUDA_VISIBLE_DEVICES' entries (up to the first
    invalid one, as CUDA reads it), else all `count`."""
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is None:
        return [str(i) for i in range(count)]
    devices = []
    for entry in (e.strip() for e in chosen.split(",")):
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices


def _try_lock(dir_fd: int, name: str, lock_dir: Path) -> int | None:
    """The lock file `name` locked (its descriptor holds the lock), or None if another holds it."""
    fd = open_lock_file(dir_fd, name, lock_dir / name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lease_gpu(devices: list[str], lock_dir: Path, slots_per_gpu: int = 1, timeout_s: float = 3600.0) -> str:
    """Take a free slot on one of `devices` (spread over devices first); return the device.
    Waits while all are busy."""
    dir_fd = open_lock_dir(lock_dir)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            for slot in range(slots_per_gpu):
                for device in devices:
                    fd = _try_lock(dir_fd, f"gpu{re.sub(r'[^A-Za-z0-9-]', '_', device)}.slot{slot}.lock", lock_dir)
                    if fd is not None:
                        _held.append(fd)
                        return device
            if time.monotonic() > deadline:
                raise LeaseError(f"no free GPU slot in {lock_dir} after {timeout_s:.0f} s")
            time.sleep(0.5)
    finally:
        os.close(dir_fd)


@contextmanager
def cpu_threads(count: int, device: torch.device, lock_dir: Path | None = None) -> Iterator[None]:
    """Compute with `count` CPU threads (params.yaml `threads`), whichever engine started us:
    a result's last bits depend on it. On the CPU, with that many cores leased until the block
    ends (a command run in-process, as the tests do, gives them back when it returns)."""
    held = lease_cores(count, lock_dir or default_lock_dir()) if device.type == "cpu" else []
    try:
        torch.set_num_threads(count)
        yield
    finally:
        for fd in held:
            os.close(fd)  # (closing drops its flock)


def lease_cores(count: int, lock_dir: Path) -> list[int]:
    """Take `count` of the cores this process may run on (all of them if it has fewer); return
    the descriptors that hold them (closing one frees its core; so does the process's end).
    Waits, holding the gate, while too few are free."""
    cores = sorted(os.sched_getaffinity(0))
    need = min(count, len(cores))
    if need < 1:
        return []
    dir_fd = open_lock_dir(lock_dir)
    try:
        gate = open_lock_file(dir_fd, "cores.gate.lock", lock_dir / "cores.gate.lock")
        try:
            told = False
            try:
                fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another command waits for cores: after it
                told = _waiting(need, cores, lock_dir)
                fcntl.flock(gate, fcntl.LOCK_EX)
            while True:
                taken: list[int] = []
                for core in cores:
                    fd = _try_lock(dir_fd, f"cpu{core}.lock", lock_dir)
                    if fd is not None:
                        taken.append(fd)
                    if len(taken) == need:
                        return taken
                for fd in taken:
                    os.close(fd)
                told = told or _waiting(need, cores, lock_dir)
                time.sleep(0.2)
        finally:
            os.close(gate)  # the gate only; the cores taken stay leased
    finally:
        os.close(dir_fd)


def _waiting(need: int, cores: list[int], lock_dir: Path) -> bool:
    print(
        f"waiting for {need} free CPU core(s) of {len(cores)}: leased by other runs (lock files in {lock_dir})",
        file=sys.stderr,
        flush=True,
    )
    return True


def choose_device(request: str, lock_dir: Path | None = None) -> torch.device:
    """'auto': a leased GPU, the scheduler's pinned GPU, or the CPU; else the named device."""
    if request != "auto":
        return torch.device(request)
    pinned = os.environ.get("SLURM_JOB_ID") and os.environ.get("CUDA_VISIBLE_DEVICES")
    if pinned:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    count = gpu_count()
    devices = visible_devices(count) if count else []
    if not devices:
        return torch.device("cpu")
    slots = int(os.environ.get("TRANSFERLAB_RUNS_PER_GPU", "1"))
    device = lease_gpu(devices, lock_dir or default_lock_dir(), slots)
    os.environ["CUDA_VISIBLE_DEVICES"] = device  # before the first CUDA call of this process
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
