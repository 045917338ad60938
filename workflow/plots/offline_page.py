"""The HTML template of `dvc plots show/diff` that draws offline (compute nodes, closed networks).

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN. This writes a page with the
same three libraries inline, taken from the npm registry by `npm pack` (the versions DVC's page
names) and checked against the SHA-512 sums pinned here. `make setup` runs it and points
`plots.html_template` in .dvc/config.local at the page.

    python workflow/plots/offline_page.py OUT.html
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# name -> (version, the registry's integrity of its tarball, the browser build inside it)
PACKAGES = {
    "vega": (
        "5.20.2",
        "sha512-qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw==",
        "build/vega.min.js",
    ),
    "vega-lite": (
        "5.2.0",
        "sha512-Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw==",
        "build/vega-lite.min.js",
    ),
    "vega-embed": (
        "6.18.2",
        "sha512-wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg==",
        "build/vega-embed.min.js",
    ),
}

# DVC's page (dvc_render.html.PAGE_HTML) without its {scripts} (the CDN tags): the libraries inline.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    LIBRARIES
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def library(name: str, folder: Path) -> str:
    """The browser build of one pinned package, from a tarball whose SHA-512 matches the pin."""
    version, integrity, member = PACKAGES[name]
    packed = subprocess.run(
        ["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(folder)],
        capture_output=True,
        text=True,
    )
    if packed.returncode != 0:
        raise SystemExit(f"offline_page: npm pack {name}@{version} failed: {packed.stderr.strip().splitlines()[-1:]}")
    tarball = folder / json.loads(packed.stdout)[0]["filename"]
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != integrity:
        raise SystemExit(f"offline_page: {tarball.name} has {digest}, not the pinned {integrity}")
    with tarfile.open(tarball) as tar:
        code = tar.extractfile(f"package/{member}").read().decode()
    return code.replace("</script", "<\\/script")  # inline: the code must not close its own tag


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        scripts = "\n".join(
            f"<script>/* {name} {PACKAGES[name][0]} */\n{library(name, Path(folder))}\n</script>" for name in PACKAGES
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(PAGE.replace("LIBRARIES", scripts))
    tmp.replace(out)
    print(f"{out}: dvc plots pages draw offline ({', '.join(f'{n} {v[0]}' for n, v in PACKAGES.items())})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    main(Path(sys.argv[1]))
