"""The webhook function: the webhook queue's events, signed and delivered to the clients."""

from smsgw import snapshot
from smsgw.workers import send_webhooks as handler

__all__ = ["handler"]
snapshot.register()
