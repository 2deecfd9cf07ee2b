"""Data access: the table, the buckets, the queues and the secrets, behind small interfaces.

Every AWS call chargelog makes is in this package. Each store takes its table, bucket, queue or secret name from
the caller (chargelog.stores builds them from the settings); none reads the settings itself.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from chargelog import aws

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


BATCH_GET_LIMIT = 100  # keys one BatchGetItem may ask for
MAX_UNPROCESSED_ATTEMPTS = 8


class UnprocessedItemsError(RuntimeError):
    """DynamoDB kept leaving part of a batch read or write undone."""


def backoff_pause(attempt: int, sleep: Callable[[float], None] = time.sleep) -> None:
    """Exponential backoff with full jitter before retrying unprocessed keys or items, as AWS advises."""
    sleep(random.uniform(0, min(5.0, 0.05 * 2**attempt)))  # noqa: S311 - jitter, not crypto


def batch_get(
    table: Any,
    keys: Sequence[dict[str, Any]],
    projection: Sequence[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The items at ``keys`` (eventually consistent; only ``projection``'s attributes when given), by their key
    values in the order of each key's attributes. Keys without an item are left out. BatchGetItem, 100 keys a call,
    retrying what DynamoDB leaves unprocessed."""
    client = table.meta.client  # the resource's client (de)serializes Python types
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    key_names = tuple(keys[0]) if keys else ()
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        request_keys: dict[str, Any] = {"Keys": list(keys[start : start + BATCH_GET_LIMIT])}
        if projection:
            names = {f"#p{n}": name for n, name in enumerate(projection)}
            request_keys["ProjectionExpression"] = ", ".join(names)
            request_keys["ExpressionAttributeNames"] = names
        request = {table.name: request_keys}
        for attempt in range(MAX_UNPROCESSED_ATTEMPTS):
            response = client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table.name, []):
                found[tuple(item[name] for name in key_names)] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            backoff_pause(attempt, sleep)
        else:
            raise UnprocessedItemsError(f"DynamoDB left keys unread after {MAX_UNPROCESSED_ATTEMPTS} attempts")
    return found


def error_code(error: ClientError) -> str | None:
    code = error.response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def is_condition_failure(error: ClientError) -> bool:
    """Whether a DynamoDB write failed only because its condition did not hold."""
    return error_code(error) in CONDITION_FAILURES


class TableStore:
    """A store over one DynamoDB table, named by the caller. It holds the name only: the table resource comes from
    chargelog.aws on each use, so a store kept for the whole process follows `aws.reset`."""

    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return aws.table(self._table_name)


class BucketStore:
    """A store over one S3 bucket, named by the caller; its client comes from chargelog.aws on each use."""

    def __init__(self, bucket: str) -> None:
        self._bucket = bucket

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def _s3(self) -> Any:
        return aws.client("s3")
