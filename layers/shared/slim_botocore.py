"""Keeps in the layer's botocore only the service models the gateway's functions use.

botocore ships a model for every AWS service (400-odd folders, about 28 MB). The first client a
process creates lists them all, a directory listing and a few stats per service: about 20 ms of
every cold start. And Lambda downloads and unpacks the whole layer. The functions make DynamoDB,
Secrets Manager and SQS clients; the X-Ray SDK makes an X-Ray client when it runs outside Lambda,
and STS serves assumed-role credentials: those models stay, every other one goes.

The first client also parses `endpoints.json` (1.2 MB: every service's endpoints in every
partition, read into ordered dicts, about 15 ms): it keeps every partition and region, and the
endpoints of the services kept. The kept models lose their documentation, which only docstrings
read (the DynamoDB model is 556 KB with it, 113 KB without).

Usage: python slim_botocore.py <the layer's python folder>
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path
from typing import Any

SERVICES = frozenset({"dynamodb", "secretsmanager", "sqs", "sts", "xray"})
DOCUMENTATION = frozenset({"documentation", "documentationUrl"})


def _undocumented(value: Any, *, names: bool = False) -> Any:
    """`value` without documentation strings; `names`: a shape's members, whose keys are names."""
    if isinstance(value, dict):
        return {
            k: _undocumented(v, names=k == "members" and not names)
            for k, v in value.items()
            if names or not (k in DOCUMENTATION and isinstance(v, str))
        }
    if isinstance(value, list):
        return [_undocumented(v) for v in value]
    return value


def _rewrite(path: Path, change: Any) -> None:
    """A JSON file (gzipped or not, as botocore ships it) rewritten as `change` makes it, compact."""
    compressed = path.name.endswith(".gz")
    raw = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
    text = json.dumps(change(json.loads(raw)), separators=(",", ":"), ensure_ascii=False).encode()
    path.write_bytes(gzip.compress(text, mtime=0) if compressed else text)


def _kept_endpoints(data: dict[str, Any]) -> dict[str, Any]:
    for partition in data["partitions"]:
        partition["services"] = {k: v for k, v in partition["services"].items() if k in SERVICES}
    return data


def slim(packages: Path) -> list[str]:
    """Remove every other service's model and endpoints; returns the services removed."""
    data = packages / "botocore" / "data"
    present = {entry.name for entry in data.iterdir() if entry.is_dir()}
    missing = SERVICES - present
    if missing:
        raise SystemExit(f"botocore in {packages} has no model for {', '.join(sorted(missing))}")
    removed = sorted(present - SERVICES)
    for name in removed:
        shutil.rmtree(data / name)
    _rewrite(data / "endpoints.json", _kept_endpoints)
    for model in sorted(data.glob("*/*/service-2.json*")):
        _rewrite(model, _undocumented)
    return removed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.rsplit("Usage: ", 1)[1].strip())
    gone = slim(Path(sys.argv[1]))
    sys.stdout.write(f"botocore: kept the models of {', '.join(sorted(SERVICES))}; removed {len(gone)} others\n")
