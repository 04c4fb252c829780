"""The Aliyun function: the shared handler wired to the Aliyun routes."""

from smsgw.api import build_handler
from smsgw.routes.aliyun import router

handler = build_handler("aliyun", router)
