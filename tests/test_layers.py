"""The layout of ../shared/STYLE.md, checked from the source so it cannot rot: libraries (`core`, `model`) below
stages (`ingest`, `scoring`, `monitor`), no stage importing another, wiring only in `cli/` (and the dashboard's
own process). Every import counts, those inside functions too."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT = ("core", "model", "ingest", "scoring", "monitor", "dashboard", "cli", "bench", "tests", "tools")
ALLOWED = {
    "core": {"core"},
    "model": {"model"},
    "ingest": {"core", "model", "ingest"},
    "scoring": {"core", "model", "scoring"},
    "monitor": {"core", "model", "monitor"},
    # The dashboard is its own process: it reads the stages' query functions and loads the model for Explain.
    "dashboard": {"core", "model", "monitor", "dashboard"},
    "cli": {"core", "model", "ingest", "scoring", "monitor", "cli"},
}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level project package) of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = path.relative_to(REPO).parts[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [package] if node.level else [node.module or ""]
        else:
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in PROJECT]
    return found


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_its_layer_may(package):
    files = sources(package)
    assert files, f"{package}/ has no Python files"
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {imported}"
        for path in files
        for line, imported in project_imports(path)
        if imported not in ALLOWED[package]
    ]
    assert not wrong, f"{package}/ may import only {sorted(ALLOWED[package])}:\n" + "\n".join(wrong)


def test_every_top_level_package_is_checked():
    packages = {p.name for p in REPO.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages - {"tests"} == set(ALLOWED), "a new package needs its place in ALLOWED (and in STYLE.md)"


def test_the_checker_sees_nested_and_relative_imports(tmp_path, monkeypatch):
    fake = tmp_path / "scoring"
    fake.mkdir()
    code = "def f():\n    from monitor.alerts import ack\n    import ingest.config\nfrom . import y\n"
    (fake / "x.py").write_text(code)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert sorted(project_imports(fake / "x.py")) == [(2, "monitor"), (3, "ingest"), (4, "scoring")]
