"""Diagnostics requests and the files received for them, in the table (see docs/storage.md).

- A request: ``pk = "DIAG#<request_id>"``, ``sk = "REQUEST"``; listed per charger through index gsi2 with
  ``gsi2pk = "DIAGNOSTICS#<charger_id>"``, ``gsi2sk = "<requested_at>#<request_id>"``. The upload authorizer
  counts allowed uploads on it (`note_upload_attempt`), the indexer received files (`put_file`) and rejected
  uploads (`note_upload_error`).
- A file: ``pk = "DIAG#<request_id>"``, ``sk = "FILE#<received_at>#<object key's last segment>"``.
- The per-charger counter of OCPP request ids: ``pk = "DIAGCOUNTER#<charger_id>"``, ``sk = "COUNTER"``.

Requests and files carry no TTL: they are the history of what was asked and received (the files themselves
expire from the bucket after DiagnosticsRetentionDays).

`DiagnosticsStore` takes the table's name, `DiagnosticsFiles` the diagnostics bucket's, from the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Final, Literal
from urllib.parse import quote

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from chargelog.dal import BucketStore, TableStore, error_code, is_condition_failure, query_all
from chargelog.models.diagnostics import DiagnosticsFile, DiagnosticsRequest, UploadLimits
from chargelog.models.keys import iso, timestamp_key

REQUEST_SORT_KEY: Final = "REQUEST"
FILE_SORT_PREFIX: Final = "FILE#"
COUNTER_SORT_KEY: Final = "COUNTER"
CHARGER_INDEX: Final = "gsi2"
MAX_ERROR_LENGTH: Final = 1000

FileRecording = Literal["recorded", "duplicate", "full", "no request"]


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


class DiagnosticsStore(TableStore):
    """Requests, their files and the per-charger counters, in the table."""

    def put_request(self, request: DiagnosticsRequest) -> None:
        """Store a new request; never over an existing one (a ConditionalCheckFailed ClientError then)."""
        item = request.model_dump(mode="json", exclude_none=True) | {
            "pk": request_partition(request.request_id),
            "sk": REQUEST_SORT_KEY,
            "gsi2pk": charger_requests_partition(request.charger_id),
            "gsi2sk": request_sort_key_in_index(request),
        }
        self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())

    def get_request(self, request_id: str) -> DiagnosticsRequest | None:
        item = self._table.get_item(
            Key={"pk": request_partition(request_id), "sk": REQUEST_SORT_KEY}, ConsistentRead=True
        ).get("Item")
        return DiagnosticsRequest.model_validate(item) if item else None

    def requests_of_charger(
        self,
        charger_id: str,
        *,
        limit: int,
        after: str | None = None,
        newest_first: bool = True,
    ) -> tuple[list[DiagnosticsRequest], str | None]:
        """Up to ``limit`` of a charger's requests in time order (newest first by default), starting after the index
        sort key ``after``; with the sort key to continue after, or None when there are no more."""
        condition = Key("gsi2pk").eq(charger_requests_partition(charger_id))
        if after is not None:
            condition &= Key("gsi2sk").lt(after) if newest_first else Key("gsi2sk").gt(after)
        response = self._table.query(
            IndexName=CHARGER_INDEX, KeyConditionExpression=condition, ScanIndexForward=not newest_first, Limit=limit
        )
        items = response.get("Items", [])
        requests = [DiagnosticsRequest.model_validate(item) for item in items]
        more = "LastEvaluatedKey" in response and bool(items)
        return requests, (str(items[-1]["gsi2sk"]) if more else None)

    def next_ocpp_request_id(self, charger_id: str) -> int:
        """The next GetLog requestId for a charger: 1, 2, 3 ... (an atomic counter, so never twice the same)."""
        response = self._table.update_item(
            Key={"pk": counter_partition(charger_id), "sk": COUNTER_SORT_KEY},
            UpdateExpression="ADD #n :one SET charger_id = :c",
            ExpressionAttributeNames={"#n": "value"},
            ExpressionAttributeValues={":one": 1, ":c": charger_id},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["value"])

    def note_upload_attempt(self, request_id: str, at: datetime) -> bool:
        """Count an upload the authorizer let through; False if there is no such request."""
        try:
            self._table.update_item(
                Key={"pk": request_partition(request_id), "sk": REQUEST_SORT_KEY},
                UpdateExpression="ADD upload_attempts :one SET last_attempt_at = :at",
                ExpressionAttributeValues={":one": 1, ":at": iso(at)},
                ConditionExpression=Attr("pk").exists(),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def note_upload_error(self, request_id: str, error: str, at: datetime) -> bool:
        """Record why an upload was rejected (malformed multipart, empty file); False if there is no such request."""
        try:
            self._table.update_item(
                Key={"pk": request_partition(request_id), "sk": REQUEST_SORT_KEY},
                UpdateExpression="SET last_upload_error = :e, last_upload_error_at = :at",
                ExpressionAttributeValues={":e": error[:MAX_ERROR_LENGTH], ":at": iso(at)},
                ConditionExpression=Attr("pk").exists(),
            )
        except ClientError as failure:
            if is_condition_failure(failure):
                return False
            raise
        return True

    def put_file(self, file: DiagnosticsFile, limits: UploadLimits) -> FileRecording:
        """Record a received file and count it (and its bytes) on its request, if the request has room for it: fewer
        than ``limits.max_files`` files and at most ``limits.max_bytes`` bytes with this one.

        Two writes, no transaction: first one conditional UpdateItem of the request counts the file and adds its
        sort key to the request's ``counted_files`` (only if the request exists, has room, and has not counted this
        file); then the file item is put, never over an existing one. A file item therefore always belongs to a
        counted file, and a file is counted once however often it is recorded: when the first write finds the file
        counted already (a redelivered notification, or a retry after a failure between the two writes), only the
        item is put, if missing, and the answer is "duplicate".

        Nothing is written unless the answer is "recorded" or "duplicate": "full" when the request has no room left
        for it, "no request" when the request does not exist.
        """
        max_files, max_bytes = limits.max_files, limits.max_bytes
        if file.size > max_bytes:
            return "no request" if self.get_request(file.request_id) is None else "full"
        sort_key = file_sort_key(file)
        try:
            self._table.update_item(
                Key={"pk": request_partition(file.request_id), "sk": REQUEST_SORT_KEY},
                UpdateExpression="ADD files_received :one, bytes_received :size, counted_files :file"
                " SET last_file_at = :at",
                # Items written before bytes were counted have no bytes_received: their files count 0.
                ConditionExpression="attribute_exists(pk) AND NOT contains(counted_files, :sort_key)"
                " AND (attribute_not_exists(files_received) OR files_received < :max_files)"
                " AND (attribute_not_exists(bytes_received) OR bytes_received <= :room)",
                ExpressionAttributeValues={
                    ":one": 1,
                    ":size": file.size,
                    ":file": {sort_key},
                    ":sort_key": sort_key,
                    ":at": iso(file.received_at),
                    ":max_files": max_files,
                    ":room": max_bytes - file.size,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
            request = error.response.get("Item")
            if not request:
                return "no request"
            counted = request.get("counted_files", {}).get("SS", [])
            if sort_key not in counted:
                return "full"
            recording: FileRecording = "duplicate"
        else:
            recording = "recorded"
        item = file.model_dump(mode="json") | {"pk": request_partition(file.request_id), "sk": sort_key}
        try:
            self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())
        except ClientError as error:
            if not is_condition_failure(error):
                raise  # counted, not yet listed: a retry puts the item ("duplicate")
        return recording

    def files_of(self, request_id: str) -> list[DiagnosticsFile]:
        """Every file received for a request, in the order received."""
        items = query_all(
            self._table,
            KeyConditionExpression=Key("pk").eq(request_partition(request_id))
            & Key("sk").begins_with(FILE_SORT_PREFIX),
            ConsistentRead=True,
        )
        return [DiagnosticsFile.model_validate(item) for item in items]

    def charger_action_records(
        self,
        charger_id: str,
        action: str,
        start: datetime,
        end: datetime,
        *,
        max_items: int,
        table_name: str | None = None,
    ) -> list[dict[str, Any]]:
        """A charger's collected records of one OCPP action between two times (inclusive), oldest first, at most
        ``max_items`` (the newest are dropped past that), where `charger_action_partition` finds them."""
        # The record modules load with the API's first read of a request's lifecycle: the upload indexer, which
        # shares this store, never reads records (tests/unit/test_cold_start.py).
        from chargelog.dal.record_queries import RecordStore, charger_action_partition
        from chargelog.dal.records import record_from_item

        items, _ = RecordStore(table_name or self._table_name).in_range(
            charger_action_partition(charger_id, action), timestamp_key(start), f"{timestamp_key(end)}~"
        )
        return [record_from_item(item) for item in items[:max_items]]


@dataclass(frozen=True)
class StoredObject:
    """An object of the diagnostics bucket, its body not read yet."""

    metadata: dict[str, str]  # names in lower case
    content_type: str | None
    body: Any  # botocore's StreamingBody
    etag: str = ""

    def chunks(self, size: int) -> Iterator[bytes]:
        yield from self.body.iter_chunks(chunk_size=size)

    def close(self) -> None:
        """Release the connection, also when the body was not read to its end (a rejected upload)."""
        self.body.close()


class DiagnosticsFiles(BucketStore):
    """The diagnostics bucket: uploads as API Gateway stored them (``incoming/``) and the files kept."""

    def get(self, key: str) -> StoredObject | None:
        """The object at ``key``, or None if there is none."""
        try:
            stored = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                return None
            raise
        metadata = {name.lower(): value for name, value in (stored.get("Metadata") or {}).items()}
        return StoredObject(metadata, stored.get("ContentType"), stored["Body"], str(stored.get("ETag") or ""))

    def put_new(self, key: str, body: IO[bytes], content_type: str) -> bool:
        """Write an object unless one exists at ``key`` (S3's conditional write); False if one does."""
        try:
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
        except ClientError as error:
            if error_code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=key)

    def download_url(self, key: str, filename: str, seconds: int) -> str:
        """A presigned GET of the object, valid for ``seconds``, that saves it as ``filename``."""
        return str(
            self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentDisposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
                },
                ExpiresIn=seconds,
            )
        )
