"""Shared package of the SMS gateway: models, provider clients and the services around them."""

from smsgw import lazy_packages

# Powertools' event handler, event classes and parameters utility, without the parts of theirs the
# gateway never uses (smsgw.lazy_packages): before any module of the gateway imports them.
lazy_packages.install()
