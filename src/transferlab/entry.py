"""The `transferlab` console script: heavy commands go to the warm server (prefork.py) when
one can be had, everything else (and the fallback) runs in this process through cli.py."""

from __future__ import annotations

import os
import sys


def main() -> None:
    from transferlab import prefork

    argv = sys.argv[1:]
    if prefork.enabled(argv):
        code = prefork.run_remote(argv)
        if code is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    from transferlab.cli import main as run_in_process

    run_in_process()
