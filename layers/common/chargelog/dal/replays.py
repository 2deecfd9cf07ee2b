"""Replays' progress in the table: ``pk = "REPLAY"``, ``sk = "<vendor>#<source_id>#<replay_id>"``.

An item per replay, forgotten 14 days after it was asked for (``expires_at``, the table's TTL). The partition stays
small (a replay is asked for by hand), so listing every recent replay is one Query. ``after_key`` is the last raw page
the replay has read and written: a continuation (or a retry) lists the pages after it. Progress updates only an item
that exists (`ReplayGone` otherwise), so a job whose item was deleted or has expired stops instead of leaving a
partial item behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Final

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from chargelog.dal import TableStore, is_condition_failure, query_all
from chargelog.errors import ConflictError
from chargelog.models.keys import iso
from chargelog.models.replays import Replay, ReplayState

REPLAY_PARTITION: Final = "REPLAY"
REPLAY_TTL: Final = timedelta(days=14)
MAX_ERROR_LENGTH: Final = 2000
COUNTERS: Final = ("pages_read", "records_read", "records_written", "records_quarantined", "pages_unreadable")


class ReplayGone(LookupError):
    """The replay's item is not (or no longer) in the table."""


def _key(vendor: str, source_id: str, replay_id: str) -> dict[str, str]:
    return {"pk": REPLAY_PARTITION, "sk": f"{vendor}#{source_id}#{replay_id}"}


class ReplayStore(TableStore):
    def create(self, replay: Replay) -> None:
        item = _key(replay.vendor, replay.source_id, replay.replay_id) | replay.model_dump(mode="json")
        item["expires_at"] = int((replay.created_at + REPLAY_TTL).timestamp())
        try:
            self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())
        except ClientError as error:
            if is_condition_failure(error):
                raise ConflictError(f"Replay {replay.replay_id} exists already.") from error
            raise

    def get(self, vendor: str, source_id: str, replay_id: str) -> Replay | None:
        item = self._table.get_item(Key=_key(vendor, source_id, replay_id), ConsistentRead=True).get("Item")
        return Replay.model_validate(item) if item else None

    def after_key(self, vendor: str, source_id: str, replay_id: str) -> str | None:
        """The last page the replay has read and written, if any; `ReplayGone` when the replay has no item."""
        item = self._table.get_item(
            Key=_key(vendor, source_id, replay_id),
            ConsistentRead=True,
            ProjectionExpression="after_key",
        ).get("Item")
        if item is None:
            raise ReplayGone(f"Replay {replay_id} is not in the table (deleted, or expired after 14 days).")
        return str(item["after_key"]) if item.get("after_key") else None

    def progress(
        self,
        vendor: str,
        source_id: str,
        replay_id: str,
        now: datetime,
        *,
        after_key: str | None,
        counts: dict[str, int],
    ) -> None:
        """Count what a batch of pages did and move ``after_key`` past them (the replay is running)."""
        values: dict[str, Any] = {":running": "running", ":now": iso(now)}
        clauses = ["#state = :running", "updated_at = :now"]
        if after_key is not None:
            clauses.append("after_key = :after")
            values[":after"] = after_key
        adds = [f"{name} :{name}" for name in COUNTERS if counts.get(name)]
        values.update({f":{name}": counts[name] for name in COUNTERS if counts.get(name)})
        expression = "SET " + ", ".join(clauses) + (" ADD " + ", ".join(adds) if adds else "")
        self._update(replay_id, _key(vendor, source_id, replay_id), expression, {"#state": "state"}, values)

    def finish(
        self, vendor: str, source_id: str, replay_id: str, state: ReplayState, now: datetime, error: str | None = None
    ) -> None:
        """The replay is done, or failed (``error``: why)."""
        values: dict[str, Any] = {":state": state, ":now": iso(now)}
        expression = "SET #state = :state, updated_at = :now"
        if error is not None:
            expression += ", #error = :error"
            values[":error"] = error[:MAX_ERROR_LENGTH]
        else:
            expression += " REMOVE #error"
        names = {"#state": "state", "#error": "error"}
        self._update(replay_id, _key(vendor, source_id, replay_id), expression, names, values)

    def _update(
        self, replay_id: str, key: dict[str, str], expression: str, names: dict[str, str], values: dict[str, Any]
    ) -> None:
        try:
            self._table.update_item(
                Key=key,
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ConditionExpression=Attr("pk").exists(),
            )
        except ClientError as error:
            if is_condition_failure(error):
                raise ReplayGone(
                    f"Replay {replay_id} is not in the table (deleted, or expired after 14 days)."
                ) from error
            raise

    def list(self, vendor: str | None = None, source_id: str | None = None) -> Iterator[Replay]:
        """Replays asked for in the last 14 days (of one vendor, or one source), oldest first per source."""
        condition = Key("pk").eq(REPLAY_PARTITION)
        if vendor is not None:
            prefix = f"{vendor}#" if source_id is None else f"{vendor}#{source_id}#"
            condition = condition & Key("sk").begins_with(prefix)
        return (Replay.model_validate(item) for item in query_all(self._table, KeyConditionExpression=condition))
