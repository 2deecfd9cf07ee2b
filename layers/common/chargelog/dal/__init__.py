"""Data access: the table, the buckets, the queues and the secrets, behind small interfaces.

Every AWS call chargelog makes is in this package. Each store takes its table, bucket, queue or secret name from
the caller (chargelog.stores builds them from the settings); none reads the settings itself.
"""

from __future__ import annotations

from collections.abc import Iterator
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
