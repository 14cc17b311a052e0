"""meta-qznusnih: oelint-adv finds nothing, and the recipe's do_install, run the way bitbake
runs it (its variables expanded, `sh -e`, into a ${D} of its own), gives a tree that loads in
gdb and whose launcher watches a real process."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO, quiet_env
from tests.records import read_jsonl

LAYER = REPO / "meta-qznusnih"
RECIPE_DIR = LAYER / "recipes-devtools" / "gdb-qznusnih"
OELINT = Path(sys.executable).parent / "oelint-adv"
# gdb's Python (DESIGN.md): the board's gdb embeds the image's python3 the same way.
GDB_PYTHON = "/usr/bin/python3"


def recipe_path() -> Path:
    (recipe,) = RECIPE_DIR.glob("gdb-qznusnih_*.bb")
    return recipe


def layer_releases() -> list[str]:
    text = (LAYER / "conf" / "layer.conf").read_text()
    return re.search(r'^LAYERSERIES_COMPAT_qznusnih = "([^"]+)"', text, re.M).group(1).split()


def recipe_variables(text: str) -> dict[str, str]:
    """The plain `NAME = "value"` and `NAME ??= "value"` assignments of a recipe."""
    found = re.findall(r'^([A-Z_]+) (?:\?\?)?= "([^"]*)"', text, re.M)
    return dict(found)


def function_body(text: str, name: str) -> str:
    match = re.search(rf"^{name}\(\) \{{\n(.*?)^\}}", text, re.M | re.S)
    assert match, f"{name} not in the recipe"
    return match.group(1)


def expand(text: str, variables: dict[str, str]) -> str:
    """bitbake's ${VAR} expansion before a shell task runs (repeated: values refer to others);
    an unknown variable fails the test, as bitbake would leave it for the shell to choke on."""
    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
    for _ in range(10):
        expanded = pattern.sub(lambda m: variables[m.group(1)], text)
        if expanded == text:
            return text
        text = expanded
    raise AssertionError(f"unexpanded variables left in {text!r}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """Run the recipe's do_install: unpack SRC_URI's file:// entry from the recipe's files/
    (bitbake's FILESPATH), expand the variables, run the body with `sh -e` into ${D}."""
    work = tmp_path_factory.mktemp("yocto-work")
    text = recipe_path().read_text()
    variables = recipe_variables(text)
    (uri,) = re.findall(r"file://([^ \"]+)", variables["SRC_URI"])
    unpack = work / "sources"
    shutil.copytree(
        RECIPE_DIR / "files" / uri, unpack / uri, ignore=shutil.ignore_patterns("__pycache__")
    )
    version = sysconfig.get_python_version()
    site = f"/usr/lib/python{version}/site-packages"
    variables.update(
        WORKDIR=str(work),
        UNPACKDIR=str(unpack),
        D=str(work / "image"),
        bindir="/usr/bin",
        datadir="/usr/share",
        PYTHON_SITEPACKAGES_DIR=site,
    )
    body = expand(function_body(text, "do_install"), variables)
    done = subprocess.run(["sh", "-e", "-c", body], capture_output=True, text=True, cwd=work)
    assert done.returncode == 0, done.stderr
    image = work / "image"
    return {
        "image": image,
        "site": image / site.lstrip("/"),
        "site_on_board": Path(site),
        "gdbinit": image / expand(variables["QZNUSNIH_GDBINIT"], variables).lstrip("/"),
        "launcher": image / "usr" / "bin" / "qznusnih",
    }


@pytest.mark.parametrize("release", layer_releases())
def test_oelint_adv_finds_nothing_in_the_layer(release):
    if not OELINT.exists():
        pytest.fail("oelint-adv is missing: run scripts/setup.sh --dev")
    files = [str(recipe_path()), str(LAYER / "conf" / "layer.conf")]
    cmd = [str(OELINT), "--quiet", "--mode", "all", "--release", release, *files]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_recipe_version_is_the_package_version():
    from gdb_qznusnih import __version__

    assert recipe_path().name == f"gdb-qznusnih_{__version__}.bb"


def test_the_installed_tree_is_the_package_and_its_two_entry_points(installed):
    package = installed["site"] / "gdb_qznusnih"
    shipped = sorted(p.relative_to(REPO) for p in (REPO / "gdb_qznusnih").rglob("*.py"))
    assert sorted(Path("gdb_qznusnih") / p.relative_to(package) for p in package.rglob("*.py")) == (
        shipped
    )
    assert not list(installed["image"].rglob("__pycache__"))
    assert stat.S_IMODE(installed["launcher"].stat().st_mode) == 0o755
    assert stat.S_IMODE(installed["gdbinit"].stat().st_mode) == 0o644
    loader_on_board = installed["site_on_board"] / "gdb_qznusnih" / "loader.py"
    assert installed["gdbinit"].read_text() == f"source {loader_on_board}\n"


def test_the_installed_gdbinit_line_registers_the_commands_from_the_installed_tree(installed):
    # On the board the line names /usr/lib/...; here that tree is under ${D}.
    line = installed["gdbinit"].read_text().strip()
    loader = installed["image"] / line.removeprefix("source /")
    probe = "python import gdb_qznusnih; print('from', gdb_qznusnih.__file__)"
    cmd = ["gdb", "-nx", "-batch", "-ex", f"source {loader}", "-ex", probe, "-ex", "help qzn-watch"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=quiet_env())
    assert done.returncode == 0, done.stderr
    assert f"from {installed['site'] / 'gdb_qznusnih' / '__init__.py'}" in done.stdout
    assert "Usage: qzn-watch [OPTIONS] ADDR" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_the_installed_launcher_watches_a_process(installed, start_tester, tmp_path):
    tester = start_tester("--rounds", "3")
    prefix = tmp_path / "w"
    env = quiet_env(PYTHONPATH=str(installed["site"]))
    cmd = [GDB_PYTHON, str(installed["launcher"]), "watch", hex(tester.addr), str(tester.pid)]
    cmd += ["--engine", "gdb", "--log", str(prefix), "--quiet", "--no-html"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    tester.assert_completed(3)
    assert [r["kind"] for r in read_jsonl(f"{prefix}.jsonl")] == ["write", "read"] * 3
