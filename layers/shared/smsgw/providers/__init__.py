"""Provider clients: validated send requests in, signed HTTP calls out, one outcome per number.

Each provider lives in its own module and is imported on its own, so a function loads only the
client it uses.
"""
