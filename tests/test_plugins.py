"""The one clash rule of `harness.extensions`, with real installed distributions: a plugin that
reuses a built-in name is refused, naming both packages, for criteria and trainers alike; two
plugins sharing a name too. The plugin's other names work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import REPO, SUITE_YAML, cli, run_cli, write_suite
from tests.plugin_helpers import install_dist_info

CLASH = REPO / "tests" / "clash_pkg"
ECHO = REPO / "tests" / "plugin_pkg"


@pytest.fixture(scope="module")
def clash_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    install_dist_info(CLASH, site)
    return install_dist_info(ECHO, site)


def test_a_criterion_plugin_reusing_a_built_in_name_is_refused(
    clash_site: Path, tmp_path: Path
) -> None:
    """In a fresh process, as a user meets it: the suite naming `contains` is refused at its
    line, naming tuneval and the plugin; the plugin's own `shouts` loads and validates."""
    yaml_text = SUITE_YAML.replace(
        "    - {id: bare,", "    - {id: loud, type: shouts}\n    - {id: bare,"
    )
    suite = write_suite(tmp_path / "mini", yaml_text)
    path = os.pathsep.join(map(str, [clash_site, CLASH, REPO]))
    done = cli("suites", "validate", str(suite), env={"PYTHONPATH": path}, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    where = f"error: {suite / 'suite.yaml'}:line 17 (rubric.good[0].type): "
    refused = "criterion type 'contains' is defined by both tuneval and tuneval-clash "
    assert lines[0].startswith(where + refused), lines[0]
    assert "Traceback" not in done.stderr


def test_a_trainer_plugin_reusing_a_taken_name_is_refused(
    clash_site: Path,
    monkeypatch: pytest.MonkeyPatch,
    mini_suite: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sft` (tuneval's, and the clash plugin's) and `echo` (two plugins') are listed with why
    they are refused, and `--trainer` on either exits 2 with that line before the store exists;
    `dpo`, claimed once, still loads."""
    from harness import criteria

    criteria.registered()  # loaded before the plugin is installed: this process keeps `contains`
    for folder in (clash_site, CLASH, ECHO):
        monkeypatch.syspath_prepend(str(folder))
    code, out, _ = run_cli("trainers", "list", "--json", capsys=capsys)
    listed = {t["name"]: t for t in json.loads(out)["trainers"]}
    assert code == 0 and "error" not in listed["dpo"], listed["dpo"]
    both = {
        "sft": "both tuneval and tuneval-clash",
        "echo": "both tuneval-clash and tuneval-echo-trainer",
    }
    for name, packages in both.items():
        assert f"trainer '{name}' is defined by {packages}" in listed[name]["error"]
        db = tmp_path / name / "tuneval.db"
        args = ("train", str(mini_suite), "--trainer", name, "--db", str(db))
        code, _, err = run_cli(*args, capsys=capsys)
        assert code == 2 and err.strip() == f"error: {listed[name]['error']}", err
        assert not db.parent.exists()
