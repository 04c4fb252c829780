"""Packages whose `__init__` imports far more than the gateway uses, entered without running it.

Importing `aws_lambda_powertools.event_handler.api_gateway` first runs `event_handler/__init__.py`,
which imports every resolver Powertools has (AppSync's brings asyncio; Bedrock's, VPC Lattice's, …),
and `utilities/data_classes/__init__.py`, which imports some forty event classes; the parameters
utility's imports the AppConfig, DynamoDB and SSM providers beside the Secrets Manager one. They do
so only to re-export names. `lazy_package` enters such a package in `sys.modules` as a module whose
`__init__` has not run: a name its `__init__` imports (`from .alb_event import ALBEvent`) is
imported from that module when it is first asked for, a submodule is imported as usual, and asking
for anything else runs the `__init__` after all. Every name stays where it was.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.abc import Loader

PACKAGES = (
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.data_classes",
    "aws_lambda_powertools.utilities.parameters",
)


def reexports(package: str, source: str) -> dict[str, tuple[str, str]]:
    """What a package's `__init__` imports at its top level: name -> (module, name in that module)."""
    found: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ImportFrom):
            continue
        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        module = (f"{base}.{node.module}" if node.module else base) if node.level else str(node.module)
        for alias in node.names:
            found[alias.asname or alias.name] = (module, alias.name)
    return found


class _Package:
    """A package module's attributes, found as the package's `__init__` would have made them."""

    def __init__(self, module: ModuleType, loader: Loader, exports: dict[str, tuple[str, str]]) -> None:
        self.module = module
        self.loader = loader
        self.exports = exports
        self.lock = threading.RLock()
        self.initialised = False

    def attribute(self, name: str) -> Any:
        package = self.module.__name__
        if name in self.exports:
            source, original = self.exports[name]
            if source == package:  # `from . import submodule`
                value = importlib.import_module(f"{package}.{original}")
            else:
                value = getattr(importlib.import_module(source), original)
        elif not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            self.run_init()
            try:
                return self.module.__dict__[name]
            except KeyError:
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        setattr(self.module, name, value)
        return value

    def run_init(self) -> None:
        """The package's own `__init__`, once; then the module is as if it had been imported."""
        with self.lock:
            if self.initialised:
                return
            self.initialised = True
            self.loader.exec_module(self.module)
            self.module.__dict__.pop("__getattr__", None)


def lazy_package(name: str) -> ModuleType | None:
    """Enter the package `name` in `sys.modules` without running its `__init__` (see above); None
    where it is imported already or is not a package of source on the path."""
    if name in sys.modules:
        return None
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.origin is None or not spec.submodule_search_locations:
        return None
    with open(spec.origin, encoding="utf-8") as f:
        exports = reexports(name, f.read())
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__getattr__"] = _Package(module, spec.loader, exports).attribute
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def install() -> None:
    """The packages above, made lazy before anything imports them."""
    for name in PACKAGES:
        lazy_package(name)
