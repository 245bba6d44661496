"""A plugin project of tests/ installed as pip would record it: a .dist-info (METADATA and
entry_points.txt, every group its pyproject.toml declares) in a folder meant for sys.path, which
is exactly what `importlib.metadata.entry_points()` reads from an installed distribution."""

from __future__ import annotations

import tomllib
from pathlib import Path


def install_dist_info(project: Path, site: Path) -> Path:
    """Write the project's .dist-info into `site`; returns `site`. The project's own folder
    must be on sys.path too, for the entries to import."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    lines = []
    for group, entries in meta["entry-points"].items():
        lines += [f"[{group}]", *(f"{k} = {v}" for k, v in entries.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines))
    return site
