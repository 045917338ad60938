"""Folders that the project's tools write outside the repository, kept private to the user.

Shared temp folders are not trusted (another user can plant a folder, a link or a database
there first): DVC keeps each repository's file-hash and link databases in its site cache
(/var/tmp/dvc by default, world-writable), torch.compile its generated code in
/tmp/torchinductor_<user>. Both go instead under one folder of the user's own,
$XDG_CACHE_HOME/transferlab (~/.cache/transferlab): made 0700 if absent, and refused unless it
is a real folder owned by the user and writable by nobody else. Standard library only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from transferlab.errors import InputError

DVC_SITE_CACHE = "dvc-site"  # DVC's core.site_cache_dir (in .dvc/config.local, by `make setup`)
COMPILE_CACHES = {"TORCHINDUCTOR_CACHE_DIR": "inductor", "TRITON_CACHE_DIR": "triton"}


def cache_root() -> Path:
    """The user's own cache folder for the project's tools (not yet checked)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "transferlab"


def check_private(path: Path) -> Path:
    """`path` if it is a real folder (not a link) owned by this user and writable by no one
    else; else one line saying what is wrong."""
    try:
        st = os.lstat(path)
    except OSError as err:
        raise InputError(f"{path}: {err.strerror}; expected a private folder of yours") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: not a real folder (a link or a file); remove it, it must be a private folder")
    if st.st_uid != os.getuid():
        raise InputError(
            f"{path}: owned by uid {st.st_uid}, not by you (uid {os.getuid()}); remove it or choose another"
        )
    if st.st_mode & 0o022:
        raise InputError(f"{path}: writable by others (mode {stat.S_IMODE(st.st_mode):o}); chmod 700 it")
    return path


def private_dir(path: Path) -> Path:
    """`path`, made 0700 (with its missing parents) if absent, then checked."""
    for missing in reversed([p for p in (path, *path.parents) if not os.path.lexists(p)]):
        try:
            os.mkdir(missing, 0o700)
        except FileExistsError:
            pass
        except OSError as err:
            raise InputError(f"{missing}: cannot create it ({err.strerror})") from None
    return check_private(path)


def dvc_site_cache() -> Path:
    """The private folder for DVC's site cache."""
    return private_dir(private_dir(cache_root()) / DVC_SITE_CACHE)


def compile_caches() -> None:
    """Point torch.compile's (Inductor's and Triton's) caches at private folders, before
    compiling: the user's own if they set one (checked), else ours."""
    for variable, name in COMPILE_CACHES.items():
        chosen = os.environ.get(variable)
        os.environ[variable] = str(private_dir(Path(chosen) if chosen else private_dir(cache_root()) / name))
