"""The Polyv function: the shared handler wired to the Polyv routes."""

from smsgw.api import build_handler
from smsgw.routes.polyv import router

handler = build_handler("polyv", router)
