"""The retrieval package explains itself: every decision it names is a row of docs/retrieval.md, citations
point at the papers or the docs, model files import no other model file, library code logs instead of
printing, no module keeps explanations as state, and the grid side is defined once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RETRIEVAL = ROOT / "retrieval"
DOCS = ROOT / "docs" / "retrieval.md"
TOOLS = [ROOT / "tools" / name for name in ("bench_retrieval_models.py", "bench_pairwise_eval.py", "bench_search.py")]


def sources(*suffixes: str) -> list[Path]:
    files = [p for suffix in suffixes for p in RETRIEVAL.rglob(f"*{suffix}")]
    return sorted(files + [p for p in (ROOT / "tests" / "retrieval").rglob("*.py")] + TOOLS)


def decision_rows() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    table = text[text.index("## Decisions"):text.index("## Adding a model")]
    return [line.split("|")[1].strip() for line in table.splitlines()
            if line.startswith("| ") and not line.startswith(("| decision |", "|---"))]


def test_every_named_decision_is_one_row_of_the_docs_table():
    rows = decision_rows()
    assert len(rows) == len(set(rows)) and len(rows) > 30
    named = set()
    for path in [*sources(".py", ".yaml"), DOCS]:
        text = re.sub(r"[\s#]+", " ", path.read_text(encoding="utf-8"))
        for match in re.finditer(r"decisions? ((?:'[^']+'(?:,| and)? ?)+)", text):
            named.update(re.findall(r"'([^']+)'", match.group(1)))
    assert named and not named - set(rows), sorted(named - set(rows))


def test_citations_name_the_papers_or_the_docs_never_notes_or_codes():
    forbidden = [r"retrieval-" + r"models\.md", r"anchors-" + r"\w+\.md", r"imc-loss-" + r"and-res\.md",
                 r"environment\.md", r"shared/" + r"spec", r"§ ?\d+ ?[A-Z]+\d+\b", r"\b(?:SM|HI|HS|VS|3S)-\d\b",
                 r"\[(?:INF|EXT)", r"[Ii]ssue \d+"]
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


def test_no_model_file_imports_another_model_file_and_layers_import_no_model():
    models = {p.stem for p in (RETRIEVAL / "models").glob("*.py")} - {"__init__", "base", "registry"}
    offenders = {f"{name}.py imports {sorted(bad)}" for name in models
                 if (bad := {f"retrieval.models.{m}" for m in models - {name}} & _imports(RETRIEVAL / "models" / f"{name}.py"))}
    assert models >= {"smfea", "hire", "shnet", "vsrpp", "hslm", "vsepp", "vse_gpo"} and not offenders, offenders
    layers = {f"layers/{p.name}" for p in (RETRIEVAL / "layers").glob("*.py")
              if any(name.startswith("retrieval.models") for name in _imports(p))}
    assert not layers, layers


def test_library_code_logs_instead_of_printing_and_keeps_no_last_state():
    printing, state = [], []
    for path in RETRIEVAL.rglob("*.py"):
        relative = path.relative_to(RETRIEVAL)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
                    and relative.parts[0] != "commands" and relative.name != "cli.py"):
                printing.append(f"{relative}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("last_") and node.attr != "last_hidden_state":
                state.append(f"{relative}:{node.lineno}")
    assert not printing and not state, (printing, state)


def test_the_grid_side_and_the_config_table_exist_once():
    grid = [f"{p.relative_to(ROOT)}" for p in RETRIEVAL.rglob("*.py") if re.search(r"^GRID_SIDE\s*=", p.read_text(), re.M)]
    assert grid == ["retrieval/data/precomp.py"], grid
    for path in RETRIEVAL.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "CONFIG_STEMS" not in text and not re.search(r"^\w*DEFAULTS\s*[:=]", text, re.M), path
