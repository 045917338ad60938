"""DVC's site cache in a private folder of the user's, not /var/tmp/dvc.

DVC 3 keeps each repository's file-hash and link databases under its site cache,
/var/tmp/dvc/repo/<token> by default: a world-writable folder where another user can swap in
databases of their own (a pickled object there runs as you; a planted hash hides an edit from
`dvc status`). This points the repository's core.site_cache_dir (.dvc/config.local, which
queued experiments copy) at ~/.cache/transferlab/dvc-site (transferlab.private), or makes the
folder already chosen (core.site_cache_dir or DVC_SITE_CACHE_DIR) 0700 if it is missing (a
cleared ~/.cache) and checks that it is private, as for torch.compile's caches. `make setup`,
the Snakefile and the tests run it before DVC touches the repository:

    python workflow/site_cache.py [REPO]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from transferlab.errors import InputError
from transferlab.private import dvc_site_cache, private_dir


def ensure_private_site_cache(root: Path) -> Path:
    """The private site cache folder DVC uses for the repository at `root` (set if unset)."""
    from dvc.config import Config

    if chosen := os.environ.get("DVC_SITE_CACHE_DIR"):
        return private_dir(Path(chosen))
    config = Config(dvc_dir=str(root / ".dvc"))
    chosen = config["core"].get("site_cache_dir")
    if chosen:
        return private_dir(Path(chosen))
    folder = dvc_site_cache()
    with config.edit("local") as local:
        local["core"]["site_cache_dir"] = str(folder)
    return folder


if __name__ == "__main__":
    try:
        print(f"DVC site cache: {ensure_private_site_cache(Path(sys.argv[1] if len(sys.argv) > 1 else '.'))}")
    except InputError as err:
        sys.exit(f"site cache: {err}")
