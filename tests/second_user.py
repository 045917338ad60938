"""A second, unprivileged user on this machine (`nobody`), to play the attacks of a shared
machine against the real code. CI runs as root, where setpriv switches to `nobody`;
elsewhere the tests that need it are skipped with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SETPRIV = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

needs_second_user = pytest.mark.skipif(
    os.getuid() != 0 or shutil.which("setpriv") is None,
    reason="playing a second user needs root and setpriv (CI has both)",
)


def as_nobody(*cmd: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run `cmd` as the user nobody."""
    proc = subprocess.run([*SETPRIV, *cmd], capture_output=True, text=True, **kwargs)
    if check:
        assert proc.returncode == 0, f"as nobody: {' '.join(cmd)}: {proc.stderr}"
    return proc


@contextmanager
def shared_tmp_name(prefix: str = "transferlab-attack-") -> Iterator[Path]:
    """A fresh, unused name directly in the shared temp folder (where another user can plant
    things), removed afterwards whoever made it."""
    path = Path(tempfile.gettempdir()) / f"{prefix}{uuid.uuid4().hex[:12]}"
    try:
        yield path
    finally:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
