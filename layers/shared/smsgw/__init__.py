"""Shared package of the SMS gateway: models, provider clients and the services around them."""
