"""The Ronglian function: the shared handler wired to the Ronglian routes."""

from smsgw.api import build_handler
from smsgw.routes.ronglian import router

handler = build_handler("ronglian", router)
