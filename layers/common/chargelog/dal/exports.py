"""Exports: their state in the table (``pk = "EXPORT"``, ``sk = "<id>"``) and their files in the exports bucket.

State moves queued -> running -> done | failed; a failed export may run again (an SQS retry), a done one never.
Every change is a conditional update, so two deliveries of one export cannot both finish it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from chargelog.dal import BucketStore, TableStore, is_condition_failure
from chargelog.models.exports import Export
from chargelog.models.keys import iso

EXPORT_PARTITION = "EXPORT"
OBJECT_PREFIX = "exports/"
MAX_ERROR_LENGTH = 2000


def _key(export_id: str) -> dict[str, str]:
    return {"pk": EXPORT_PARTITION, "sk": export_id}


class ExportStore(TableStore):
    def create(self, export: Export) -> None:
        item = _key(export.id) | export.model_dump(mode="json", by_alias=True, exclude_none=True)
        self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())

    def get(self, export_id: str) -> Export | None:
        item = self._table.get_item(Key=_key(export_id), ConsistentRead=True).get("Item")
        return Export.model_validate(item) if item else None

    def _update(
        self,
        export_id: str,
        set_: dict[str, Any],
        condition: Any,
        remove: tuple[str, ...] = (),
        add_attempt: bool = False,
    ) -> Export | None:
        """Apply the change if ``condition`` holds; the export as it is now, or None if the condition failed."""
        names = {f"#{name}": name for name in (*set_, *remove)}
        clauses = ["SET " + ", ".join(f"#{name} = :{name}" for name in set_)]
        values = {f":{name}": value for name, value in set_.items()}
        if add_attempt:
            clauses.append("ADD #attempts :one")
            names["#attempts"] = "attempts"
            values[":one"] = 1
        if remove:
            clauses.append("REMOVE " + ", ".join(f"#{name}" for name in remove))
        try:
            response = self._table.update_item(
                Key=_key(export_id),
                UpdateExpression=" ".join(clauses),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ConditionExpression=Attr("pk").exists() & condition,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return Export.model_validate(response["Attributes"])

    def start(self, export_id: str, now: datetime) -> Export | None:
        """Mark it running (another attempt); None if it is done or does not exist."""
        return self._update(
            export_id,
            {"state": "running", "started_at": iso(now)},
            Attr("state").ne("done"),
            remove=("finished_at", "error"),
            add_attempt=True,
        )

    def finish(self, export_id: str, object_key: str, records: int, size: int, now: datetime) -> Export | None:
        return self._update(
            export_id,
            {"state": "done", "finished_at": iso(now), "object_key": object_key, "records": records, "bytes": size},
            Attr("state").eq("running"),
        )

    def fail(self, export_id: str, error: str, now: datetime) -> Export | None:
        """Record why it failed; never over a done export."""
        return self._update(
            export_id,
            {"state": "failed", "finished_at": iso(now), "error": error[:MAX_ERROR_LENGTH]},
            Attr("state").ne("done"),
        )


class ExportFiles(BucketStore):
    """The exports bucket: one object per export, under ``exports/``."""

    @staticmethod
    def key(export_id: str, extension: str) -> str:
        return f"{OBJECT_PREFIX}{export_id}.{extension}"

    def upload(self, path: Path, key: str, content_type: str, filename: str) -> None:
        """Upload a file from disk; boto3 streams it, in parts when it is large (multipart upload)."""
        self._s3.upload_file(
            str(path),
            self._bucket,
            key,
            ExtraArgs={"ContentType": content_type, "ContentDisposition": f'attachment; filename="{filename}"'},
        )

    def download_url(self, key: str, seconds: int) -> str:
        """A presigned GET of the object, valid for ``seconds``."""
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=seconds
            )
        )
