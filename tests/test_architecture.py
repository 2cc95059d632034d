"""The repository explains itself (docs/architecture.md): `shared/` and `tools/` cite the papers or the
docs, never notes outside the repository or internal codes; `shared/` logs instead of printing and keeps
no explanation state; the docs pages exist and the README links them.  Each task has its own rules
test (tests/fau/test_repository_rules.py, tests/retrieval/test_repository_rules.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = [r"[a-z]+-models\.md", r"shared/" + r"spec", r"§ ?\d+ ?[A-Z]+\d+\b", r"\b[A-Z]{2}-\d+\b",
             r"\[(?:INF|EXT)\]", r"\b[Ii]ssue \d+"]


def _files(*folders: str, suffixes: tuple[str, ...] = (".py", ".yaml")) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*") if p.suffix in suffixes)


def test_shared_and_tools_cite_the_papers_or_the_docs():
    here = Path(__file__).resolve()
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in [*_files("shared", "tools", "tests/shared"), *(ROOT / "tests").glob("*.py"),
                              ROOT / "Makefile", ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
                 if path.resolve() != here
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if any(re.search(pattern, line) for pattern in FORBIDDEN)]
    assert not offenders, "\n".join(offenders)


def test_shared_logs_instead_of_printing_and_keeps_no_last_state():
    printing, state = [], []
    for path in (ROOT / "shared").rglob("*.py"):
        relative = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
                    and path.name != "cli.py"):
                printing.append(f"{relative}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("last_") and node.attr != "last_hidden_state":
                state.append(f"{relative}:{node.lineno}")
    assert not printing and not state, (printing, state)


def test_the_docs_pages_exist_and_the_readme_links_them():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("architecture.md", "fau.md", "retrieval.md"):
        assert (ROOT / "docs" / page).is_file(), page
        assert f"docs/{page}" in readme, f"README.md does not link docs/{page}"
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert "fau.md" in architecture and "retrieval.md" in architecture
