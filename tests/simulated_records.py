"""Records as the ocpplab collector stores them, made from the simulators' OCPP frames: test and bench data written
straight through ``RecordWriter`` (the browser tests' seeding, bench/query.py, bench/viewer.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

MESSAGE_TYPES = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}


def ocpp_records(charger_id: str, frames: Iterable[Any], site_id: str | None = None) -> Iterator[Any]:
    """The records the ocpplab collector would store for these simulator frames."""
    from chargelog.models.records import LogRecord, connector_id_from, record_id_for

    for frame in frames:
        message_type = MESSAGE_TYPES[frame.message_type_id]
        call = message_type == "CALL"
        yield LogRecord(
            vendor="ocpplab",
            source_id=charger_id,
            site_id=site_id,
            charger_id=charger_id,
            connector_id=connector_id_from(frame.payload) if call else None,
            timestamp=frame.timestamp,
            kind="ocpp",
            action=frame.action,
            direction=frame.direction,
            message_type=message_type,
            message_id=frame.message_id,
            status=frame.payload.get("errorCode") if message_type == "CALLERROR" else None,
            payload=frame.payload if call else None,
            result=None if call else frame.payload,
            ocpp_version="1.6",
            record_id=record_id_for("ocpplab", charger_id, None, message_id=frame.message_id, type=message_type),
            raw={"frame": frame.ocpp_j(), "at": frame.timestamp.isoformat()},
        )
