"""Data access: the table and the buckets, behind small interfaces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def query_all(table: Any, **query: Any) -> Iterator[dict[str, Any]]:
    """Every item a DynamoDB Query returns, following LastEvaluatedKey across pages."""
    while True:
        page = table.query(**query)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
