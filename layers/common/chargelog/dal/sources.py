"""The source registry in the DynamoDB table.

Items: ``pk = "SOURCE"``, ``sk = "<vendor>#<source_id>"``. Listing sources is a Query on one
partition (a fleet has thousands of sources at most); ``begins_with(sk, "<vendor>#")`` narrows it
to one vendor.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from chargelog.dal import TableStore, is_condition_failure, query_all
from chargelog.errors import ConflictError, NotFoundError
from chargelog.models.sources import Source

SOURCE_PARTITION = "SOURCE"


def _sort_key(vendor: str, source_id: str) -> str:
    return f"{vendor}#{source_id}"


def source_item(source: Source) -> dict[str, Any]:
    """A source as its table item."""
    return {"pk": SOURCE_PARTITION, "sk": _sort_key(source.vendor, source.source_id), **source.model_dump(mode="json")}


class SourceStore(TableStore):
    def create(self, source: Source) -> None:
        """Store a new source; an existing one with the same key is never overwritten."""
        item = source_item(source)
        try:
            self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())
        except ClientError as error:
            if is_condition_failure(error):
                raise ConflictError(f"Source {source.vendor}/{source.source_id} already exists.") from error
            raise

    def get(self, vendor: str, source_id: str) -> Source | None:
        response = self._table.get_item(
            Key={"pk": SOURCE_PARTITION, "sk": _sort_key(vendor, source_id)}, ConsistentRead=True
        )
        item = response.get("Item")
        return Source.model_validate(item) if item else None

    def list(self, vendor: str | None = None, enabled_only: bool = False) -> Iterator[Source]:
        condition = Key("pk").eq(SOURCE_PARTITION)
        if vendor is not None:
            condition = condition & Key("sk").begins_with(f"{vendor}#")
        query: dict[str, Any] = {"KeyConditionExpression": condition}
        if enabled_only:
            query["FilterExpression"] = Attr("enabled").eq(True)
        return (Source.model_validate(item) for item in query_all(self._table, **query))

    def update(self, vendor: str, source_id: str, changes: dict[str, Any], now: datetime) -> Source:
        """Apply ``changes`` (field -> value) to an existing source and return it."""
        values = {**changes, "updated_at": now.isoformat()}
        names = {f"#{field}": field for field in values}
        expression = "SET " + ", ".join(f"#{field} = :{field}" for field in values)
        try:
            response = self._table.update_item(
                Key={"pk": SOURCE_PARTITION, "sk": _sort_key(vendor, source_id)},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":{field}": value for field, value in values.items()},
                ConditionExpression=Attr("pk").exists(),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if is_condition_failure(error):
                raise NotFoundError(f"Source {vendor}/{source_id} does not exist.") from error
            raise
        return Source.model_validate(response["Attributes"])

    def delete(self, vendor: str, source_id: str) -> None:
        try:
            self._table.delete_item(
                Key={"pk": SOURCE_PARTITION, "sk": _sort_key(vendor, source_id)},
                ConditionExpression=Attr("pk").exists(),
            )
        except ClientError as error:
            if is_condition_failure(error):
                raise NotFoundError(f"Source {vendor}/{source_id} does not exist.") from error
            raise
