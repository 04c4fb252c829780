"""The Powertools packages the gateway enters without their `__init__` (smsgw.lazy_packages) give
every name they export, the very objects their own `__init__` gives, and run it when asked for
anything else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from smsgw.lazy_packages import reexports

ROOT = Path(__file__).parents[2]
CHILD = """
import json, sys
import smsgw
from smsgw.lazy_packages import PACKAGES, reexports

found = {}
for name in PACKAGES:
    module = sys.modules[name]
    parent, _, child = name.rpartition(".")
    with open(module.__file__, encoding="utf-8") as f:
        names = sorted(reexports(name, f.read()))
    untouched = "__all__" not in module.__dict__
    lazily = {n: getattr(module, n) for n in names}
    before_init = "__all__" not in module.__dict__
    everything = module.__all__  # not re-exported: the package's own __init__ runs
    found[name] = {
        "names": len(names),
        "untouched": untouched and before_init,
        "same": all(module.__dict__[n] is lazily[n] for n in names),
        "all_exported": set(everything) <= set(names),
        "parent_attribute": getattr(sys.modules[parent], child) is module,
        "missing_raises": not hasattr(module, "no_such_name"),
    }
from aws_lambda_powertools.event_handler import content_types
found["submodule"] = content_types.__name__
print(json.dumps(found))
"""


def test_each_lazy_package_gives_what_its_own_init_gives() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "shared"), "POWERTOOLS_TRACE_DISABLED": "true"}

    child = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    found = json.loads(child.stdout.splitlines()[-1])

    assert found.pop("submodule") == "aws_lambda_powertools.event_handler.content_types"
    assert set(found) == {
        "aws_lambda_powertools.event_handler",
        "aws_lambda_powertools.utilities.data_classes",
        "aws_lambda_powertools.utilities.parameters",
    }
    for name, checks in found.items():
        assert checks.pop("names") >= 10, name
        assert all(checks.values()), (name, checks)


def test_reexports_read_relative_and_absolute_imports() -> None:
    source = "\n".join(
        [
            "from .alb_event import ALBEvent",
            "from ..shared import x as y",
            "from . import util",
            "import os",
            "from a.b import C",
        ]
    )

    assert reexports("p.q.r", source) == {
        "ALBEvent": ("p.q.r.alb_event", "ALBEvent"),
        "y": ("p.q.shared", "x"),
        "util": ("p.q.r", "util"),
        "C": ("a.b", "C"),
    }
