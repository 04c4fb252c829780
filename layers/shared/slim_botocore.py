"""Keeps in the layer's botocore only the service models the gateway's functions use.

botocore ships a model for every AWS service (400-odd folders, about 28 MB). The first client a
process creates lists them all, a directory listing and a few stats per service: about 20 ms of
every cold start. And Lambda downloads and unpacks the whole layer. The functions make DynamoDB,
Secrets Manager and SQS clients; the X-Ray SDK makes an X-Ray client when it runs outside Lambda,
and STS serves assumed-role credentials: those models stay, every other one goes.

Usage: python slim_botocore.py <the layer's python folder>
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

SERVICES = frozenset({"dynamodb", "secretsmanager", "sqs", "sts", "xray"})


def slim(packages: Path) -> list[str]:
    """Remove every other service's model; returns the services removed."""
    data = packages / "botocore" / "data"
    present = {entry.name for entry in data.iterdir() if entry.is_dir()}
    missing = SERVICES - present
    if missing:
        raise SystemExit(f"botocore in {packages} has no model for {', '.join(sorted(missing))}")
    removed = sorted(present - SERVICES)
    for name in removed:
        shutil.rmtree(data / name)
    return removed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.rsplit("Usage: ", 1)[1].strip())
    gone = slim(Path(sys.argv[1]))
    sys.stdout.write(f"botocore: kept the models of {', '.join(sorted(SERVICES))}; removed {len(gone)} others\n")
