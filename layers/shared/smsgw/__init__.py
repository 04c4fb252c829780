"""Shared package of the SMS gateway: models, provider clients and the services around them."""

import os

from smsgw import lazy_packages

# Powertools' event handler, event classes and parameters utility, without the parts of theirs the
# gateway never uses (smsgw.lazy_packages): before any module of the gateway imports them.
lazy_packages.install()
# The gateway uses no pydantic plugin: looking for them reads the metadata of every distribution on
# the path when the first model is built, at every cold start. Where the variable is set, it wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
