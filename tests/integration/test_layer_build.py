"""The shared layer as `sam build` leaves it in .aws-sam/build (`make validate`, which `make test`
runs first, builds it through layers/shared/Makefile): built for Lambda's arm64 CPython 3.13, every
module with bytecode Lambda will use as it is, and boto3 matching the botocore the layer brings. And
the interpreter that Makefile builds with, found without make's help, as a plain `sam build` needs."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
from email.parser import HeaderParser
from pathlib import Path

import botocore
import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel
from packaging.utils import canonicalize_name
from slim_botocore import SERVICES

ROOT = Path(__file__).parents[2]
LAYER = ROOT / ".aws-sam" / "build" / "SharedLayer" / "python"
LAYER_MAKEFILE = ROOT / "layers" / "shared" / "Makefile"
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


def test_the_layer_holds_exactly_what_its_lock_pins(layer: Path) -> None:
    lock = ROOT / "layers" / "shared" / "requirements.lock"
    pinned = {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock.read_text(), re.MULTILINE)
    }
    installed = {}
    for metadata in layer.glob("*.dist-info/METADATA"):
        headers = HeaderParser().parsestr(metadata.read_text(encoding="utf-8"))
        installed[canonicalize_name(headers["Name"])] = headers["Version"]

    assert installed == pinned


def test_nothing_but_the_packages(layer: Path) -> None:
    assert not (layer / "bin").exists()
    assert not (layer / "requirements.txt").exists()
    assert not (layer / "requirements.lock").exists()
    assert (layer / "smsgw" / "quotas.py").is_file()


def test_botocore_keeps_only_the_service_models_the_functions_use(layer: Path) -> None:
    models = {p.name for p in (layer / "botocore" / "data").iterdir() if p.is_dir()}

    assert models == SERVICES
    assert (layer / "botocore" / "data" / "endpoints.json").is_file()


def test_botocore_keeps_every_partition_and_region_and_the_kept_services_endpoints(layer: Path) -> None:
    slim = json.loads((layer / "botocore" / "data" / "endpoints.json").read_text(encoding="utf-8"))
    full = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text(encoding="utf-8"))

    assert [p["partition"] for p in slim["partitions"]] == [p["partition"] for p in full["partitions"]]
    for kept, shipped in zip(slim["partitions"], full["partitions"], strict=True):
        assert {k: v for k, v in kept.items() if k != "services"} == {
            k: v for k, v in shipped.items() if k != "services"
        }
        assert kept["services"] == {name: v for name, v in shipped["services"].items() if name in SERVICES}
    assert (layer / "botocore" / "data" / "endpoints.json").stat().st_size < 100_000


def _shapes(model: ServiceModel) -> dict[str, tuple[str, list[str]]]:
    shapes = {name: model.shape_for(name) for name in model.shape_names}
    return {name: (s.type_name, list(getattr(s, "members", {}))) for name, s in shapes.items()}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_kept_models_lose_their_documentation_and_nothing_else(layer: Path, service: str) -> None:
    slim = Loader(extra_search_paths=[], include_default_search_paths=False)
    slim.search_paths.append(str(layer / "botocore" / "data"))
    kept = ServiceModel(slim.load_service_model(service, "service-2"), service)
    shipped = ServiceModel(Loader().load_service_model(service, "service-2"), service)

    assert kept.operation_names == shipped.operation_names
    assert kept.metadata == shipped.metadata
    assert _shapes(kept) == _shapes(shipped)
    assert shipped.operation_model(shipped.operation_names[0]).documentation
    assert not kept.operation_model(kept.operation_names[0]).documentation


def test_every_client_the_gateway_makes_has_its_model_in_the_layer() -> None:
    made = {
        name
        for source in (ROOT / "layers" / "shared" / "smsgw").rglob("*.py")
        for name in re.findall(r"""boto3\.client\(\s*["']([a-z0-9-]+)["']""", source.read_text(encoding="utf-8"))
    }

    assert made == {"dynamodb", "secretsmanager", "sqs"}
    assert made <= SERVICES


def test_the_slim_layer_makes_the_gateways_clients_and_no_others(layer: Path) -> None:
    # botocore and its dependencies are pure Python: the arm64 layer runs here as it is
    code = """
import boto3, botocore.exceptions
for region in ("cn-north-1", "us-east-1", "ap-southeast-1", "us-gov-west-1"):
    for name in ("dynamodb", "secretsmanager", "sqs", "sts", "xray"):
        print(boto3.client(name, region_name=region).meta.endpoint_url)
try:
    boto3.client("s3", region_name="cn-north-1")
except botocore.exceptions.UnknownServiceError:
    print("no s3")
print(boto3.__file__)
"""
    env = {"PYTHONPATH": str(layer), "PATH": os.environ["PATH"], "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    done = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, check=False)  # noqa: S603
    # the same clients from botocore as it ships, endpoints.json whole
    env["PYTHONPATH"] = str(Path(botocore.__file__).parents[1])
    shipped = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, check=False)  # noqa: S603

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["no s3", str(layer / "boto3" / "__init__.py")]
    assert done.stdout.splitlines()[:20] == shipped.stdout.splitlines()[:20]
    assert "https://dynamodb.cn-north-1.amazonaws.com.cn" in done.stdout.splitlines()


def _layer_python(cwd: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    """What layers/shared/Makefile builds with, asked as sam asks it: from a scratch directory."""
    env = {k: v for k, v in os.environ.items() if k != "LAYER_PYTHON"} | environ
    command = ["make", "--no-print-directory", "-s", "-f", str(LAYER_MAKEFILE), "layer-python"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)  # noqa: S603


def test_the_layer_finds_a_cpython_313_where_python313_will_not_run(tmp_path: Path) -> None:
    # pyenv's shim outside a folder whose .python-version names 3.13 (sam's scratch directory)
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "python3.13"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)

    done = _layer_python(tmp_path, PATH=f"{shims}:{os.environ['PATH']}")
    python = done.stdout.strip()
    version = subprocess.run(  # noqa: S603
        [python, "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )

    assert done.returncode == 0, done.stderr
    assert Path(python).is_absolute()
    assert version.stdout.split() == ["cpython", "3", "13"]


def test_layer_python_chooses_the_interpreter_when_it_is_set(tmp_path: Path) -> None:
    done = _layer_python(tmp_path, LAYER_PYTHON="/opt/python3.13/bin/python3.13")

    assert done.stdout.strip() == "/opt/python3.13/bin/python3.13"


def test_no_cpython_313_is_said_plainly(tmp_path: Path) -> None:
    done = _layer_python(tmp_path, LAYER_PYTHON="")

    assert done.returncode != 0
    assert "no CPython 3.13 found" in done.stderr
