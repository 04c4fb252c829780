"""The locks (`make lock`) against the requirements they pin and the code that runs on them: the
layer's for what the gateway imports, the local stack's for what `make run` imports, and each lock
holding the versions of the one it is built on."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]
LAYER_TXT = ROOT / "layers" / "shared" / "requirements.txt"
LAYER_LOCK = ROOT / "layers" / "shared" / "requirements.lock"
RUN_TXT = ROOT / "requirements-run.txt"
RUN_LOCK = ROOT / "requirements-run.lock"
DEV_TXT = ROOT / "requirements-dev.txt"
DEV_LOCK = ROOT / "requirements-dev.lock"
LOCKS = {LAYER_TXT: LAYER_LOCK, RUN_TXT: RUN_LOCK, DEV_TXT: DEV_LOCK}

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: int


def pins(lock: Path) -> dict[str, Pin]:
    """Distribution (canonical name) -> its pinned version and how many hashes come with it."""
    found: dict[str, Pin] = {}
    name = None
    for line in lock.read_text().splitlines():
        if match := _PIN.match(line):
            name = canonicalize_name(match["name"])
            found[name] = Pin(match["version"], 0)
        elif name is not None and line.strip().startswith("--hash=sha256:"):
            found[name] = Pin(found[name].version, found[name].hashes + 1)
    return found


def requirements(txt: Path) -> list[Requirement]:
    """The requirements of a .txt file, those of the files it includes with -r too."""
    found = []
    for raw in txt.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += requirements(ROOT / line.removeprefix("-r ").strip())
        elif line:
            found.append(Requirement(line))
    return found


def third_party_imports(*folders: Path, first_party: set[str]) -> dict[str, set[Path]]:
    """Top-level module -> the files that import it, beyond the standard library and `first_party`;
    imports made for the type checker only do not count."""
    found: dict[str, set[Path]] = {}
    for folder in folders:
        for source in folder.rglob("*.py"):
            if "node_modules" in source.parts:
                continue
            tree = ast.parse(source.read_text(encoding="utf-8"))
            type_only = {
                id(node)
                for block in ast.walk(tree)
                if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                for node in ast.walk(block)
            }
            for node in ast.walk(tree):
                if id(node) in type_only:
                    continue
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in first_party:
                        found.setdefault(top, set()).add(source.relative_to(ROOT))
    return found


def distributions(module: str) -> set[str]:
    """The installed distributions that provide a top-level module, by canonical name."""
    provided = importlib.metadata.packages_distributions().get(module)
    assert provided, f"no installed distribution provides {module!r}"
    return {canonicalize_name(name) for name in provided}


@pytest.mark.parametrize("txt", list(LOCKS), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_requirement_is_pinned_in_its_lock_within_its_specifier(txt: Path) -> None:
    locked = pins(LOCKS[txt])

    for requirement in requirements(txt):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in {LOCKS[txt].name}: run `make lock`"
        assert requirement.specifier.contains(locked[name].version, prereleases=True), (
            f"{LOCKS[txt].name} pins {name}=={locked[name].version}, outside {requirement}: run `make lock`"
        )


@pytest.mark.parametrize("lock", list(LOCKS.values()), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_pin_comes_with_its_hashes(lock: Path) -> None:
    locked = pins(lock)

    assert locked
    assert [name for name, pin in locked.items() if pin.hashes == 0] == []


def test_the_layer_pins_boto3s_own_dependencies_too() -> None:
    # Left to the build, they would be whatever PyPI has newest that day.
    assert {"botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil"} <= set(pins(LAYER_LOCK))


@pytest.mark.parametrize(("base", "lock"), [(LAYER_LOCK, RUN_LOCK), (RUN_LOCK, DEV_LOCK)], ids=["run", "dev"])
def test_each_lock_holds_the_versions_of_the_one_it_builds_on(base: Path, lock: Path) -> None:
    # The functions run locally and in the tests on what the layer ships, and `make test` installs
    # its lock over the one `make run` installed.
    below, above = pins(base), pins(lock)

    assert {name: (pin.version, above[name].version if name in above else None) for name, pin in below.items()} == {
        name: (pin.version, pin.version) for name, pin in below.items()
    }


def test_the_gateway_imports_only_what_the_layer_ships() -> None:
    layer = pins(LAYER_LOCK)
    imports = third_party_imports(
        ROOT / "layers" / "shared" / "smsgw", ROOT / "functions", first_party={"smsgw", "app"}
    )

    assert imports
    missing = {module: files for module, files in imports.items() if not distributions(module) & set(layer)}
    assert missing == {}


def test_the_local_stack_imports_only_what_make_run_installs() -> None:
    run = pins(RUN_LOCK)
    # `smsgw` is the layer the local stack loads its handlers with, from the repository itself
    imports = third_party_imports(ROOT / "local", first_party={"local", "smsgw"})

    assert "yaml" in imports
    missing = {module: files for module, files in imports.items() if not distributions(module) & set(run)}
    assert missing == {}


def test_make_run_installs_what_moto_server_serves_with() -> None:
    # local.processes starts the moto_server command: moto's web framework is no import of ours.
    assert {"moto", "flask", "flask-cors", "werkzeug"} <= set(pins(RUN_LOCK))
