"""The FAU package explains itself: every decision it names is a row of docs/fau.md, citations point at
the papers or the docs, model files import no other model file, library code logs instead of printing,
and no module keeps explanations as state."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAU = ROOT / "fau"
DOCS = ROOT / "docs" / "fau.md"


def sources(*suffixes: str) -> list[Path]:
    files = [p for suffix in suffixes for p in FAU.rglob(f"*{suffix}")]
    return sorted(files + [p for p in (ROOT / "tests" / "fau").rglob("*.py")])


def decision_rows() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    table = text[text.index("## Decisions"):text.index("## Adding a model")]
    return [line.split("|")[1].strip() for line in table.splitlines()
            if line.startswith("| ") and not line.startswith(("| decision |", "| --- "))]


def test_every_named_decision_is_one_row_of_the_docs_table():
    rows = decision_rows()
    assert len(rows) == len(set(rows)) and len(rows) > 40
    named = set()
    for path in sources(".py", ".yaml"):
        text = re.sub(r"[\s#]+", " ", path.read_text(encoding="utf-8"))
        for match in re.finditer(r"decisions? ((?:'[^']+'(?:,| and)? ?)+)", text):
            named.update(re.findall(r"'([^']+)'", match.group(1)))
    assert named and not named - set(rows), sorted(named - set(rows))


def test_citations_name_the_papers_or_the_docs_never_notes_or_codes():
    forbidden = [r"fau-" + r"models\.md", r"anchors-" + r"\w+\.md", r"environment\.md", r"shared/" + r"spec",
                 r"§ ?\d+ ?[AGMV]\d+\b", r"\[(?:INF|EXT)\]", r"[Ii]ssue \d+"]
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in [*sources(".py", ".yaml", ".md"), DOCS] if path.name != Path(__file__).name
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if any(re.search(pattern, line) for pattern in forbidden)]
    assert not offenders, "\n".join(offenders)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_model_file_imports_another_model_file():
    models = {p.stem for p in (FAU / "models").glob("*.py")} - {"__init__", "base", "registry"}
    offenders = {f"{name}.py imports {sorted(bad)}" for name in models
                 if (bad := {f"fau.models.{m}" for m in models - {name}} & _imports(FAU / "models" / f"{name}.py"))}
    assert models >= {"algrnet", "mgrrnet", "vlfau"} and not offenders, offenders


def test_library_code_logs_instead_of_printing_and_keeps_no_last_state():
    printing, state = [], []
    for path in FAU.rglob("*.py"):
        relative = path.relative_to(FAU)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
                    and relative.parts[0] != "commands" and relative.name != "cli.py"):
                printing.append(f"{relative}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("last_"):
                state.append(f"{relative}:{node.lineno}")
    assert not printing and not state, (printing, state)
