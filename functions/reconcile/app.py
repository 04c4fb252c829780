"""The reconciliation function, on a schedule: numbers no receipt settled are asked about or expired."""

from smsgw import snapshot
from smsgw.workers import reconcile as handler

__all__ = ["handler"]
snapshot.register()
