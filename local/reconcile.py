"""Run reconciliation once against the running local stack, as its schedule does on AWS: the local
stack has no scheduler.

    python -m local.reconcile [--state .local-stack/state.json] [--ahead 73h]

ReconcileFunction's handler runs in this process with the environment the stack gives its worker
(`local.invoke`): it asks the sandbox's Aliyun (QuerySendDetails) about numbers no receipt settled
and expires those still open after 72 hours, queueing their webhooks. Reconciliation only looks at
calls sent at least RECONCILE_AFTER_SECONDS (ten minutes) before its clock, and expires after 72
hours: `--ahead` moves its clock forward (`700`, `12m`, `73h`), so that what a deployment would do
in ten minutes or three days happens now. The handler's summary is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from local.invoke import NoStack, read_state, run
from local.stack import DEFAULT_STATE_DIR, EVENTS_DIR, STATE_FILE

FUNCTION = "ReconcileFunction"
SCHEDULED_EVENT = EVENTS_DIR / "reconcile.json"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    """`700`, `700s`, `12m`, `73h` or `4d` in seconds."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 700, 12m or 73h, not {text!r}")
    return float(found[1]) * _UNITS[found[2]]


def move_clock(ahead: float) -> None:
    """Reconciliation's clock, `ahead` seconds in the future."""
    # Importable once the handler is loaded: loading it puts the shared layer on the path.
    import smsgw.workers

    reconciler, _ = smsgw.workers.reconciler()
    reconciler.now = lambda: time.time() + ahead


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.reconcile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE_DIR / STATE_FILE)
    parser.add_argument(
        "--ahead", type=seconds, default=0.0, metavar="DURATION", help="move reconciliation's clock forward"
    )
    args = parser.parse_args(argv)
    try:
        state = read_state(args.state)
    except NoStack as exc:
        print(exc, file=sys.stderr)
        return 2
    event = json.loads(SCHEDULED_EVENT.read_text())
    result, failed = run(FUNCTION, event, state, before=(lambda: move_clock(args.ahead)) if args.ahead else None)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
