"""The dependency rule: fau and retrieval import shared and third-party libraries, never each other.

Two proofs, cheap enough for every run: an AST scan of import statements, and an import of every
module of one task in a subprocess where the other task's extra dependencies (computed from
pyproject.toml, so the test follows the extras) are made unimportable by a meta-path blocker.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, files
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"fau": {"retrieval"}, "retrieval": {"fau"}, "shared": {"fau", "retrieval"}}


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_ast_dependency_rule(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imported_top_levels(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def _extra_modules(extra: str) -> set[str]:
    """Top-level import names provided by the distributions of one pyproject extra."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def dist_names(name: str) -> set[str]:
        out = set()
        for requirement in extras[name]:
            dist = requirement.split(";")[0]
            for sep in "<>=!~[ ":
                dist = dist.split(sep)[0]
            out.add(dist.lower().replace("_", "-"))
        return out

    only = dist_names(extra) - dist_names({"fau": "retrieval", "retrieval": "fau"}[extra])
    return set().union(*(_top_level_modules(dist) for dist in only))


def _top_level_modules(dist: str) -> set[str]:
    """Importable top-level names a distribution installs, read from its RECORD.

    (top_level.txt is not enough: dlib-bin lists only its extension module, not `dlib`.)
    """
    try:
        paths = files(dist) or []
    except PackageNotFoundError:
        return set()
    names = set()
    for path in paths:
        first = path.parts[0]
        if first.endswith((".dist-info", ".data")) or first in ("..", "__pycache__"):
            continue
        if len(path.parts) > 1 or first.endswith((".py", ".so")):
            names.add(first.split(".")[0])
    return names


BLOCKED_IMPORT = r"""
import importlib, importlib.abc, json, pkgutil, sys
blocked = set(json.loads(sys.argv[1]))
package = sys.argv[2]

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Blocker())
pkg = importlib.import_module(package)
count = 0
for info in pkgutil.walk_packages(pkg.__path__, package + "."):
    if info.name.endswith("__main__"):
        continue
    importlib.import_module(info.name)
    count += 1
from shared.cli import build_parser
print(count)
"""


@pytest.mark.parametrize("package,other", [("fau", "retrieval"), ("retrieval", "fau"), ("shared", None)])
def test_each_task_imports_without_the_other_tasks_dependencies(package, other):
    blocked = {"fau", "retrieval"} - {package}
    for extra in ("fau", "retrieval"):
        if extra != package:
            blocked |= _extra_modules(extra)
    assert package == "shared" or len(blocked) > 2, "no third-party modules found to block"
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT, json.dumps(sorted(blocked)), package],
        capture_output=True, text=True, cwd=ROOT, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip().splitlines()[-1]) >= 1


@pytest.mark.parametrize("prog", ["fau", "retrieval"])
def test_console_scripts_help_and_version(prog):
    script = Path(sys.executable).parent / prog
    for flag in ("--help", "--version"):
        result = subprocess.run([str(script), flag], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert prog in result.stdout
