"""The shared layer as `sam build` leaves it in .aws-sam/build (`make validate`, which `make test`
runs first, builds it through layers/shared/Makefile): built for Lambda's arm64 CPython 3.13, every
module with bytecode Lambda will use as it is, and boto3 matching the botocore the layer brings."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from email.parser import HeaderParser
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LAYER = ROOT / ".aws-sam" / "build" / "SharedLayer" / "python"
# The flags word of a .pyc header (PEP 552): hash-based, source not checked.
UNCHECKED_HASH = 0b01


@pytest.fixture(scope="module")
def layer() -> Path:
    assert LAYER.is_dir(), f"{LAYER} is missing: `make validate` builds it"
    return LAYER


def _version(layer: Path, distribution: str) -> str:
    [metadata] = layer.glob(f"{distribution}-*.dist-info/METADATA")
    return str(HeaderParser().parsestr(metadata.read_text(encoding="utf-8"))["Version"])


def test_every_module_ships_bytecode_that_lambda_uses_unchecked(layer: Path) -> None:
    sources = [p for p in layer.rglob("*.py") if "__pycache__" not in p.parts]
    assert len(sources) > 500

    missing, checked = [], []
    for source in sources:
        compiled = Path(importlib.util.cache_from_source(str(source)))
        if not compiled.is_file():
            missing.append(source)
            continue
        header = compiled.read_bytes()[:16]
        if header[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
            checked.append(compiled)

    assert not missing, missing[:5]
    assert not checked, checked[:5]
    assert (layer / "smsgw" / "__pycache__").is_dir(), "the gateway's own package is compiled too"


def test_native_code_is_built_for_lambdas_arm64_python(layer: Path) -> None:
    extensions = list(layer.rglob("*.so"))

    assert any(p.parts[-2] == "pydantic_core" for p in extensions)
    assert all(p.name.endswith(".cpython-313-aarch64-linux-gnu.so") for p in extensions), extensions


def test_boto3_matches_the_botocore_the_layer_brings(layer: Path) -> None:
    boto3, botocore = _version(layer, "boto3"), _version(layer, "botocore")

    assert boto3.split(".")[:2] == botocore.split(".")[:2]
    assert (layer / "boto3").is_dir()
    # The versions the test suite runs
    assert boto3 == importlib.metadata.version("boto3")


def test_nothing_but_the_packages(layer: Path) -> None:
    assert not (layer / "bin").exists()
    assert not (layer / "requirements.txt").exists()
    assert (layer / "smsgw" / "quotas.py").is_file()
