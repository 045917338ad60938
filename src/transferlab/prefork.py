"""A warm process for the heavy commands: `transferlab train` and `features` run in a child
forked from a server that has already imported torch, DVCLive and the package.

Each training run of the pipeline is its own DVC/Snakemake job, and every job used to pay
2-3 s of imports (torch 1.8-2.0 s, DVCLive 0.9 s) for a few seconds of training. The first
heavy command on a machine starts the server (detached, its stdio on /dev/null, so that it
never holds an engine's pipes open); every later one connects to it over a Unix socket,
hands over its argument list, working folder, environment and its stdin/stdout/stderr
(SCM_RIGHTS), and gets the exit code back. The child runs exactly the code the command would
have run in-process. Jobs stay jobs: DVC and Snakemake see the same commands, outputs and
exit codes, and a killed client takes its child down with it.

The server is keyed by the interpreter, sys.path and the size and mtime of every source file
of the package: edited code gets a new server. It exits after TRANSFERLAB_PREFORK_IDLE
seconds without work (default 120). It is off under SLURM (each job may be on another node
and is its own allocation) and with TRANSFERLAB_PREFORK=0; if it cannot start, the command
runs in-process as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("train", "features")  # the ones that import torch and run often
STARTUP_TIMEOUT_S = 60.0


def command_started_at() -> float | None:
    """Wall-clock start of the command: of the client process when a warm server runs it (so
    that a run's fixed cost counts from when the engine started the command), else of this
    process (Linux /proc); None elsewhere."""
    if "TRANSFERLAB_STARTED_AT" in os.environ:
        return float(os.environ["TRANSFERLAB_STARTED_AT"])
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def enabled(argv: list[str]) -> bool:
    """Whether this command line goes to the warm server."""
    return bool(argv) and argv[0] in COMMANDS and os.environ.get("TRANSFERLAB_PREFORK", "1") != "0" and "SLURM_JOB_ID" not in os.environ


def socket_path() -> Path:
    """Where this code's server listens: one per interpreter, sys.path and source state."""
    package = Path(__file__).resolve().parent
    h = hashlib.sha256(f"{sys.executable}\0{sys.path}\0{package}".encode())
    for path in sorted(package.rglob("*.py")):
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    folder = Path(os.environ.get("TRANSFERLAB_PREFORK_DIR", f"/tmp/transferlab-prefork-{os.getuid()}"))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder / f"{h.hexdigest()[:16]}.sock"


def run_remote(argv: list[str]) -> int | None:
    """Run the command in the warm server; its exit code, or None if no server could be had."""
    path = socket_path()
    conn = _connect(path) or (_start_server(path) and _wait_for(path))
    if not conn:
        return None
    env = {**os.environ, "TRANSFERLAB_STARTED_AT": str(command_started_at() or time.time())}
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": env}).encode()
    with conn:
        conn.sendall(struct.pack("!I", len(request)))
        socket.send_fds(conn, [request], [0, 1, 2])
        reply = _recv_exactly(conn, 4)
    return struct.unpack("!i", reply)[0] if reply else 1


def _connect(path: Path) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        return s
    except OSError:
        s.close()
        return None


def _start_server(path: Path) -> bool:
    """Start a detached server (new session, stdio on /dev/null); True if it was launched."""
    try:
        subprocess.Popen([sys.executable, "-m", "transferlab.prefork", str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)  # fmt: skip
        return True
    except OSError:
        return False


def _wait_for(path: Path) -> socket.socket | None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if conn := _connect(path):
            return conn
        time.sleep(0.05)
    return None


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


# --- the server ------------------------------------------------------------------------------


def serve(path: Path) -> None:
    """Preload, listen, and fork a handler per connection until idle for too long."""
    import fcntl

    lock = open(f"{path}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # one server per socket; racing starters leave
    except OSError:
        return
    _preload()
    idle = float(os.environ.get("TRANSFERLAB_PREFORK_IDLE", "120"))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(64)
    try:
        while select.select([server], [], [], idle)[0]:
            conn, _ = server.accept()
            if os.fork() == 0:
                server.close()
                _handle(conn)  # never returns
            conn.close()
    finally:
        path.unlink(missing_ok=True)


def _preload() -> None:
    """Import what every heavy command imports, without starting a thread pool or CUDA (the
    children are forked from this process)."""
    import dvclive  # noqa: F401
    import torch  # noqa: F401

    import transferlab.analysis.extract  # noqa: F401
    import transferlab.cli  # noqa: F401
    import transferlab.studies.binary.train  # noqa: F401
    import transferlab.studies.grid.train  # noqa: F401
    import transferlab.studies.strategies.train  # noqa: F401


def _handle(conn: socket.socket) -> None:
    """In a handler child: receive the request, fork the command, relay its exit code; kill the
    command if the client goes away."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    size = struct.unpack("!I", _recv_exactly(conn, 4))[0]
    request, fds, _, _ = socket.recv_fds(conn, size, 3)
    if len(request) < size:  # a large environment may arrive in pieces
        rest = _recv_exactly(conn, size - len(request))
        if not rest:  # the client went away mid-request
            os._exit(0)
        request += rest
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_command(json.loads(request), fds)  # never returns
    for fd in fds:
        os.close(fd)
    os._exit(_relay(conn, pid))


def _relay(conn: socket.socket, pid: int) -> int:
    pidfd = os.pidfd_open(pid)
    while True:
        ready = select.select([pidfd, conn], [], [])[0]
        if pidfd in ready:
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            code = 128 - code if code < 0 else code  # killed by a signal: as a shell reports it
            try:
                conn.sendall(struct.pack("!i", code))
            except OSError:
                pass
            return 0
        if not conn.recv(1, socket.MSG_PEEK):  # the client is gone (killed): so is its command
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
            return 0


def _run_command(request: dict, fds: list[int]) -> None:
    """In the command child: become the client's process (stdio, folder, environment) and run."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin, sys.stdout, sys.stderr = (open(i, mode, closefd=False, buffering=1 if i else -1) for i, mode in ((0, "r"), (1, "w"), (2, "w")))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    if "OMP_NUM_THREADS" in os.environ:  # read by torch at import, which happened in the server
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    sys.argv = ["transferlab", *request["argv"]]
    from transferlab.cli import finish, run_app

    finish(run_app())


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
