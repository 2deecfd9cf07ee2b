"""Key and time helpers shared by the models and the table's data access (see docs/storage.md).

Standard library only, and low in the layers: models, logic and dal all import from here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

TIMESTAMP_KEY_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
CHARGERS_PARTITION: Final = "CHARGERS"


def timestamp_key(moment: datetime) -> str:
    """Fixed-width UTC time, so string order is time order."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_KEY_FORMAT)


def parse_timestamp_key(text: str) -> datetime:
    """The time a `timestamp_key` wrote."""
    return datetime.strptime(text, TIMESTAMP_KEY_FORMAT).replace(tzinfo=UTC)


def timestamp_json(key: str) -> str:
    """The time of a `timestamp_key` as pydantic writes a UTC datetime in JSON (``2025-01-31T23:59:59.123456Z``, or
    without a fraction when it is zero), straight from the text: a read of a page does this once per record."""
    return f"{key[:19]}Z" if key[20:26] == "000000" else key


def iso(moment: datetime) -> str:
    """A time as stored in an attribute: ISO 8601 in UTC."""
    return moment.astimezone(UTC).isoformat()


# Between a record's time and its record id in the id the API gives a record (``GET /chargers/{c}/logs/{id}``).
API_ID_SEPARATOR: Final = "~"


def api_record_id(moment: datetime, record_id: str) -> str:
    """A record's id in the API: its time (as its sort key holds it) and its record id, which find it with one
    GetItem. Alerts name their evidence so, and the viewer opens it."""
    return f"{timestamp_key(moment)}{API_ID_SEPARATOR}{record_id}"


def charger_partition(charger_id: str) -> str:
    return f"CHARGER#{charger_id}"


def action_partition(charger_id: str, action: str) -> str:
    return f"CHARGER#{charger_id}#ACTION#{action}"


def kind_partition(charger_id: str, kind: str) -> str:
    """A charger's records of a kind that has no OCPP action (status records), on index gsi1, in items written
    before such records were read from their charger's partition."""
    return f"CHARGER#{charger_id}#KIND#{kind}"


def site_partition(site_id: str) -> str:
    """A site's records on index gsi2, in items written before sites were found through their chargers."""
    return f"SITE#{site_id}"


def site_chargers_partition(site_id: str) -> str:
    """A site's entries of the charger index, on index gsi2: which chargers a site's records are under."""
    return f"SITECHARGERS#{site_id}"


def fleet_action_partition(action: str, day: date) -> str:
    """Every charger's records of one action on one UTC day: one partition per day keeps writes spread."""
    return f"ACTION#{action}#{day.isoformat()}"


def charger_entry_key(charger_id: str, vendor: str, source_id: str) -> str:
    return f"{charger_id}#{vendor}#{source_id}"


# Actions most of a charger's records are (periodic meter samples): kept out of the charger-by-action index (gsi1),
# whose copy of them would cost a write and bytes per record, and read from the charger's own partition with a filter
# instead, where they are so dense that the filter reads little more than it keeps (docs/storage.md).
CHARGER_UNINDEXED_ACTIONS: Final = frozenset({"MeterValues"})


# The charger index entry's string set of the kinds of record its source has (``"ocpp"``, ``"status"``).
CHARGER_KINDS_FIELD: Final = "kinds"


def split_sort_key(sort_key: str) -> tuple[str, str]:
    """A record item's sort key ``<timestamp key>#<record id>`` as (timestamp key, record id)."""
    timestamp, _, record_id = sort_key.partition("#")
    return timestamp, record_id


def charger_of_partition(partition: str) -> str:
    """The charger id of a `charger_partition` key."""
    return partition.removeprefix("CHARGER#")
