"""DynamoDB on-demand request units of one call, from its parameters (what the probe sees): a
write unit per 1 KB of item written, twice that inside a transaction; a read unit per 4 KB read
strongly consistent, half that eventually consistent. An update's item is counted by its key and
the values it writes (the gateway's counters and records are far below 1 KB; the message log's
record is written whole and counted whole)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

KB = 1024


def value_size(value: Mapping[str, Any]) -> int:
    """An attribute value's size as DynamoDB counts it (UTF-8 bytes; numbers about 1 byte per two
    digits and 1 more; maps and lists 3 bytes and their contents)."""
    kind, content = next(iter(value.items()))
    if kind == "S":
        return len(str(content).encode())
    if kind == "N":
        return len(str(content).lstrip("-").replace(".", "")) // 2 + 1
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: item}) for item in content)
    if kind == "M":
        return 3 + item_size(content)
    if kind == "L":
        return 3 + sum(1 + value_size(item) for item in content)
    return 0


def item_size(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def written_size(action: Mapping[str, Any]) -> int:
    """The size of what a Put, Update, Delete or ConditionCheck writes (at least its key)."""
    if "Item" in action:
        return item_size(action["Item"])
    values = action.get("ExpressionAttributeValues") or {}
    return item_size(action.get("Key") or {}) + sum(value_size(v) for v in values.values())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def request_units(operation: str, params: Mapping[str, Any]) -> tuple[float, float]:
    """(write request units, read request units) of one call."""
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return write_units(written_size(params)), 0.0
    if operation == "TransactWriteItems":
        actions = [next(iter(entry.values())) for entry in params.get("TransactItems", [])]
        return sum(2 * write_units(written_size(a)) for a in actions), 0.0
    if operation == "BatchWriteItem":
        puts = [
            r.get("PutRequest", r.get("DeleteRequest", {}))
            for rs in params.get("RequestItems", {}).values()
            for r in rs
        ]
        return sum(write_units(item_size(p.get("Item", p.get("Key", {})))) for p in puts), 0.0
    if operation == "GetItem":
        return 0.0, 1.0 if params.get("ConsistentRead") else 0.5
    if operation == "BatchGetItem":
        reads = params.get("RequestItems", {}).values()
        return 0.0, sum(len(r.get("Keys", [])) * (1.0 if r.get("ConsistentRead") else 0.5) for r in reads)
    if operation == "TransactGetItems":
        return 0.0, 2.0 * len(params.get("TransactItems", []))
    if operation in ("Query", "Scan"):
        return 0.0, 0.5
    return 0.0, 0.0
