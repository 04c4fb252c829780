"""The shape the code keeps: small files, modules that each know few of their siblings, a template
a person can read. Complexity (at most 12 per function) is ruff's C90 rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "layers" / "shared" / "smsgw"
MAX_LINES = 400


def siblings(folder: Path) -> set[str]:
    """The modules and packages of one package folder."""
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    return modules | {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}


def imported(source: Path, package: str, names: set[str]) -> set[str]:
    """The modules of `package` (among `names`) a module imports, at its top or inside its functions."""
    found: set[str] = set()
    depth = package.count(".") + 1
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        modules: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            if node.module == package:
                found.update(alias.name for alias in node.names)
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        for module in modules:
            parts = module.split(".")
            if ".".join(parts[:depth]) == package and len(parts) > depth:
                found.add(parts[depth])
    return found & names


def test_no_file_of_the_layer_is_longer_than_400_lines() -> None:
    lengths = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in ROOT.glob("layers/**/*.py")
    }
    assert len(lengths) > 30
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}


@pytest.mark.parametrize("folder", [PACKAGE, PACKAGE / "providers", PACKAGE / "routes"], ids=lambda p: p.name)
def test_no_module_imports_more_than_half_of_its_siblings(folder: Path) -> None:
    package = ".".join(folder.relative_to(PACKAGE.parent).parts)
    names = siblings(folder)
    counts = {
        source.stem: imported(source, package, names - {source.stem})
        for source in folder.glob("*.py")
        if source.stem != "__init__"
    }
    assert len(counts) >= 3
    assert {name: sorted(found) for name, found in counts.items() if len(found) > (len(names) - 1) / 2} == {}


def test_the_count_sees_imports_at_the_top_and_inside_functions() -> None:
    found = imported(PACKAGE / "quotas.py", "smsgw", siblings(PACKAGE))
    assert {"quota_calls", "quota_windows", "gathering", "clock"} <= found
    assert "smsgw" not in found


def test_the_template_stays_under_1000_lines() -> None:
    lines = len((ROOT / "template.yaml").read_text(encoding="utf-8").splitlines())
    assert 300 < lines < 1000


def test_the_readme_is_a_short_front_page() -> None:
    """The README stays within 12 KB (12,000 bytes): the rest is in docs/."""
    assert (ROOT / "README.md").stat().st_size <= 12_000
