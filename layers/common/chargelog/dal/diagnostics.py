"""Diagnostics requests and the files received for them, in the table (see docs/storage.md).

- A request: ``pk = "DIAG#<request_id>"``, ``sk = "REQUEST"``; listed per charger through index gsi2 with
  ``gsi2pk = "DIAGNOSTICS#<charger_id>"``, ``gsi2sk = "<requested_at>#<request_id>"``. The upload authorizer
  counts allowed uploads on it (`note_upload_attempt`), the indexer received files (`put_file`) and rejected
  uploads (`note_upload_error`).
- A file: ``pk = "DIAG#<request_id>"``, ``sk = "FILE#<received_at>#<object key's last segment>"``.
- The per-charger counter of OCPP request ids: ``pk = "DIAGCOUNTER#<charger_id>"``, ``sk = "COUNTER"``.

Requests and files carry no TTL: they are the history of what was asked and received (the files themselves
expire from the bucket after DiagnosticsRetentionDays).

Every function takes the table's name as ``table_name``; by default the deployment's (settings).
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice
from typing import Any, Final

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from chargelog import aws
from chargelog.dal import query_all
from chargelog.dal.records import action_partition, record_from_item, timestamp_key
from chargelog.models.diagnostics import DiagnosticsFile, DiagnosticsRequest

REQUEST_SORT_KEY: Final = "REQUEST"
FILE_SORT_PREFIX: Final = "FILE#"
COUNTER_SORT_KEY: Final = "COUNTER"
CHARGER_INDEX: Final = "gsi2"
MAX_ERROR_LENGTH: Final = 1000


def request_partition(request_id: str) -> str:
    return f"DIAG#{request_id}"


def charger_requests_partition(charger_id: str) -> str:
    return f"DIAGNOSTICS#{charger_id}"


def counter_partition(charger_id: str) -> str:
    return f"DIAGCOUNTER#{charger_id}"


def request_sort_key_in_index(request: DiagnosticsRequest) -> str:
    """Where a request sorts among its charger's: by the time it was made."""
    return f"{timestamp_key(request.requested_at)}#{request.request_id}"


def file_sort_key(file: DiagnosticsFile) -> str:
    return f"{FILE_SORT_PREFIX}{timestamp_key(file.received_at)}#{file.key.rsplit('/', 1)[-1]}"


def _table(table_name: str | None) -> Any:
    if table_name is None:
        from chargelog.settings import get_settings

        table_name = get_settings().table_name
    return aws.table(table_name)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in {
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    }


def put_request(request: DiagnosticsRequest, *, table_name: str | None = None) -> None:
    """Store a new request; never over an existing one (a ConditionalCheckFailed ClientError then)."""
    item = request.model_dump(mode="json", exclude_none=True) | {
        "pk": request_partition(request.request_id),
        "sk": REQUEST_SORT_KEY,
        "gsi2pk": charger_requests_partition(request.charger_id),
        "gsi2sk": request_sort_key_in_index(request),
    }
    _table(table_name).put_item(Item=item, ConditionExpression=Attr("pk").not_exists())


def get_request(request_id: str, *, table_name: str | None = None) -> DiagnosticsRequest | None:
    item = (
        _table(table_name)
        .get_item(Key={"pk": request_partition(request_id), "sk": REQUEST_SORT_KEY}, ConsistentRead=True)
        .get("Item")
    )
    return DiagnosticsRequest.model_validate(item) if item else None


def requests_of_charger(
    charger_id: str,
    *,
    limit: int,
    after: str | None = None,
    newest_first: bool = True,
    table_name: str | None = None,
) -> tuple[list[DiagnosticsRequest], str | None]:
    """Up to ``limit`` of a charger's requests in time order (newest first by default), starting after the index
    sort key ``after``; with the sort key to continue after, or None when there are no more."""
    condition = Key("gsi2pk").eq(charger_requests_partition(charger_id))
    if after is not None:
        condition &= Key("gsi2sk").lt(after) if newest_first else Key("gsi2sk").gt(after)
    response = _table(table_name).query(
        IndexName=CHARGER_INDEX, KeyConditionExpression=condition, ScanIndexForward=not newest_first, Limit=limit
    )
    items = response.get("Items", [])
    requests = [DiagnosticsRequest.model_validate(item) for item in items]
    more = "LastEvaluatedKey" in response and bool(items)
    return requests, (str(items[-1]["gsi2sk"]) if more else None)


def next_ocpp_request_id(charger_id: str, *, table_name: str | None = None) -> int:
    """The next GetLog requestId for a charger: 1, 2, 3 ... (an atomic counter, so never twice the same)."""
    response = _table(table_name).update_item(
        Key={"pk": counter_partition(charger_id), "sk": COUNTER_SORT_KEY},
        UpdateExpression="ADD #n :one SET charger_id = :c",
        ExpressionAttributeNames={"#n": "value"},
        ExpressionAttributeValues={":one": 1, ":c": charger_id},
        ReturnValues="UPDATED_NEW",
    )
    return int(response["Attributes"]["value"])


def note_upload_attempt(request_id: str, at: datetime, *, table_name: str | None = None) -> bool:
    """Count an upload the authorizer let through; False if there is no such request."""
    try:
        _table(table_name).update_item(
            Key={"pk": request_partition(request_id), "sk": REQUEST_SORT_KEY},
            UpdateExpression="ADD upload_attempts :one SET last_attempt_at = :at",
            ExpressionAttributeValues={":one": 1, ":at": _iso(at)},
            ConditionExpression=Attr("pk").exists(),
        )
    except ClientError as error:
        if _is_condition_failure(error):
            return False
        raise
    return True


def note_upload_error(request_id: str, error: str, at: datetime, *, table_name: str | None = None) -> bool:
    """Record why an upload was rejected (malformed multipart, empty file); False if there is no such request."""
    try:
        _table(table_name).update_item(
            Key={"pk": request_partition(request_id), "sk": REQUEST_SORT_KEY},
            UpdateExpression="SET last_upload_error = :e, last_upload_error_at = :at",
            ExpressionAttributeValues={":e": error[:MAX_ERROR_LENGTH], ":at": _iso(at)},
            ConditionExpression=Attr("pk").exists(),
        )
    except ClientError as failure:
        if _is_condition_failure(failure):
            return False
        raise
    return True


def put_file(file: DiagnosticsFile, *, table_name: str | None = None) -> bool:
    """Record a received file and count it on its request, in one transaction.

    False (and nothing written) when the file is recorded already (a redelivered notification) or its request
    does not exist.
    """
    table = _table(table_name)
    item = file.model_dump(mode="json") | {"pk": request_partition(file.request_id), "sk": file_sort_key(file)}
    try:
        table.meta.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": table.name,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": table.name,
                        "Key": {"pk": request_partition(file.request_id), "sk": REQUEST_SORT_KEY},
                        "UpdateExpression": "ADD files_received :one SET last_file_at = :at",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {":one": 1, ":at": _iso(file.received_at)},
                    }
                },
            ]
        )
    except ClientError as error:
        if _is_condition_failure(error):
            return False
        raise
    return True


def files_of(request_id: str, *, table_name: str | None = None) -> list[DiagnosticsFile]:
    """Every file received for a request, in the order received."""
    items = query_all(
        _table(table_name),
        KeyConditionExpression=Key("pk").eq(request_partition(request_id)) & Key("sk").begins_with(FILE_SORT_PREFIX),
        ConsistentRead=True,
    )
    return [DiagnosticsFile.model_validate(item) for item in items]


def charger_action_records(
    charger_id: str, action: str, start: datetime, end: datetime, *, max_items: int, table_name: str | None = None
) -> list[dict[str, Any]]:
    """A charger's collected records of one OCPP action between two times (inclusive), oldest first, at most
    ``max_items`` (the newest are dropped past that): index gsi1, ``CHARGER#<id>#ACTION#<action>``."""
    condition = Key("gsi1pk").eq(action_partition(charger_id, action)) & Key("gsi1sk").between(
        timestamp_key(start), f"{timestamp_key(end)}~"
    )
    items = query_all(_table(table_name), IndexName="gsi1", KeyConditionExpression=condition)
    return [record_from_item(item) for item in islice(items, max_items)]
