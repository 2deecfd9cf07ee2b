"""Data access: the table, the buckets, the queues and the secrets, behind small interfaces.

Every AWS call chargelog makes is in this package. Each store takes its table, bucket, queue or secret name from
the caller (chargelog.stores builds them from the settings); none reads the settings itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

# A conditional write that did not happen: its condition failed (alone, or in a transaction).
CONDITION_FAILURES = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})


def query_all(table: Any, **query: Any) -> Iterator[dict[str, Any]]:
    """Every item a DynamoDB Query returns, following LastEvaluatedKey across pages."""
    while True:
        page = table.query(**query)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def error_code(error: ClientError) -> str | None:
    code = error.response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def is_condition_failure(error: ClientError) -> bool:
    """Whether a DynamoDB write failed only because its condition did not hold."""
    return error_code(error) in CONDITION_FAILURES
