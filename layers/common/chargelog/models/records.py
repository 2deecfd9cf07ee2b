"""The normalized log record: one OCPP message or status change of one charger, whichever vendor reported it.

Collectors turn each vendor's log entries into `LogRecord` s and the record writer stores them
(chargelog.dal.records). `record_id_for` gives each record a stable id, so that re-reading a page stores the
same records on the same keys; `connector_id_from` finds the connector in an OCPP payload of either version.

Standard library and pydantic only: this module loads on every Lambda cold start.
"""

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)

from chargelog.models.base import Model
from chargelog.models.extracted import ExtractedFields, extract_fields, with_vendor_fields
from chargelog.models.fields import SourceId, UtcDatetime
from chargelog.ocpp_frames import MessageType
from chargelog.vendors import VENDORS, Vendor

RecordKind = Literal["ocpp", "status"]
Direction = Literal["cp_to_csms", "csms_to_cp"]

HASH_ID_MARKER: Final = "h"
HASH_ID_HEX_LENGTH: Final = 32


NonEmptyStr = Annotated[str, StringConstraints(strict=True, min_length=1)]
ConnectorId = Annotated[int, Strict(), Field(ge=0)]
OcppVersion = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9]+(\.[0-9]+)+$")]
# Vendors whose log entries carry fields they extracted themselves (kept under ``extracted.vendor``).
VENDORS_WITH_OWN_FIELDS: Final = frozenset({"chargepilot"})


class LogRecord(Model):
    """One entry of a charger's log, in the same shape whichever vendor platform it came from.

    ``kind`` says what the entry is: ``"ocpp"`` for an OCPP message between the charger and its central
    system (CSMS), ``"status"`` for a status change the vendor reports outside OCPP. Fields a vendor does not
    report are None. ``record_id`` must start with ``"<vendor>:"``, as `record_id_for` makes it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    vendor: Vendor = Field(description="The platform the record was read from.")
    source_id: SourceId = Field(
        description="The source (charger, site or EVSE on the vendor's platform) whose log held the record."
    )
    charger_id: NonEmptyStr = Field(description="The charger the record is about; a site's log holds several.")
    site_id: NonEmptyStr | None = Field(
        default=None, description="The site the charger belongs to, for vendors that log per site."
    )
    connector_id: ConnectorId | None = Field(
        default=None,
        description=(
            "The connector (0: the charger as a whole), where the record is about one; see `connector_id_from`."
        ),
    )
    timestamp: UtcDatetime = Field(
        description="When the message was sent or the status changed. Must carry an offset; stored in UTC."
    )
    kind: RecordKind = Field(
        description='``"ocpp"``: an OCPP message; ``"status"``: a status change reported outside OCPP.'
    )
    action: NonEmptyStr | None = Field(
        default=None,
        description=(
            'The OCPP action (``"BootNotification"``); vendors that log a CALLRESULT with its CALL\'s action keep it.'
        ),
    )
    direction: Direction | None = Field(
        default=None,
        description="Who sent the message: the charge point (``cp_to_csms``) or the central system (``csms_to_cp``).",
    )
    message_type: MessageType | None = Field(default=None, description="The OCPP-J message type.")
    message_id: NonEmptyStr | None = Field(
        default=None, description="The OCPP-J message id, which pairs a CALL with its CALLRESULT or CALLERROR."
    )
    status: NonEmptyStr | None = Field(
        default=None,
        description="The status a status record reports, as the vendor names it; for a CALLERROR, its errorCode.",
    )
    payload: dict[str, Any] | None = Field(default=None, description="The request's payload: a CALL's.")
    result: dict[str, Any] | None = Field(
        default=None,
        description=(
            "The answer: a CALLRESULT's payload, or a CALLERROR's errorCode, errorDescription and "
            "errorDetails.\n"
            "\n"
            "A vendor that logs a CALL together with its answer as one entry fills both ``payload`` and "
            "``result``."
        ),
    )
    ocpp_version: OcppVersion | None = Field(
        default=None, description='The OCPP version the charger speaks, as dotted numbers: ``"1.6"``, ``"2.0.1"``.'
    )
    record_id: NonEmptyStr = Field(
        description="Stable id of the record, unique within the vendor; see `record_id_for`."
    )
    raw: dict[str, Any] = Field(
        description="The vendor's log entry exactly as received, so nothing is lost to normalization."
    )
    extracted: ExtractedFields | None = Field(
        default=None,
        description=(
            "What the payloads say (connector status, transaction id, meter values...), the same for every "
            "vendor.\n"
            "\n"
            "Left out, it is computed from the record's other fields (`chargelog.models.extracted`); None "
            "when the\n"
            "record holds none of them."
        ),
    )

    @model_validator(mode="after")
    def _record_id_names_vendor(self) -> Self:
        if not self.record_id.startswith(f"{self.vendor}:"):
            raise ValueError(f"record_id {self.record_id!r} must start with '{self.vendor}:' (see record_id_for)")
        return self

    @model_validator(mode="after")
    def _extract(self) -> Self:
        """Fill ``extracted`` for every vendor in this one place, unless it was given."""
        if self.extracted is None and self.kind == "ocpp":
            fields = extract_fields(self.action, self.message_type, self.payload, self.result, self.ocpp_version)
            if self.vendor in VENDORS_WITH_OWN_FIELDS:
                fields = with_vendor_fields(fields, self.action, self.raw)
            if not fields.is_empty():
                self.__dict__["extracted"] = fields  # frozen: set once, while validating
        return self


def record_id_for(vendor: str, source_id: str, vendor_id: str | int | None, /, **identifying: Any) -> str:
    """The id of a record: the same for the same record however often it is read, distinct between records.

    Where the vendor gives its log entries ids, pass one as ``vendor_id``: the record id is that id prefixed
    with the vendor (``"plugchoice:123456"``), so ids never collide across vendors; ``source_id`` and
    ``identifying`` are then ignored. The vendor's ids must be unique across its platform.

    Otherwise pass ``vendor_id=None`` and, as keyword arguments, the fields that tell the vendor's entries
    apart (timestamp, message id, action...). The id is then ``"<vendor>:h:"`` and the first 32 hex digits of
    a SHA-256 over canonical JSON of the vendor, the source and those fields: keys sorted, no whitespace,
    datetimes as UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (so one instant in two offsets is one id), dates as
    ``YYYY-MM-DD``. Any change to a field's name or value, or a field added, changes the id.

    The first three parameters are positional-only, so identifying fields may have any name.
    Raises ValueError for an unknown vendor, an empty vendor id, a vendor id that starts with ``"h:"``
    (it would look like a hashed id), no identifying fields, naive datetimes or NaN; TypeError for a boolean
    vendor id or an identifying value JSON cannot hold.
    """
    if vendor not in VENDORS:
        raise ValueError(f"unknown vendor {vendor!r}; expected one of {', '.join(VENDORS)}")
    if vendor_id is not None:
        return f"{vendor}:{_vendor_id_text(vendor_id)}"
    if not identifying:
        raise ValueError("record_id_for needs the vendor's id or at least one identifying field")
    canonical = json.dumps(
        {"vendor": vendor, "source_id": source_id, "fields": identifying},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
        default=_canonical_value,
    )
    digest = hashlib.sha256(canonical.encode("ascii")).hexdigest()
    return f"{vendor}:{HASH_ID_MARKER}:{digest[:HASH_ID_HEX_LENGTH]}"


def connector_id_from(payload: dict[str, Any] | None) -> int | None:
    """The connector an OCPP payload is about, or None where it names none.

    Reads the first of these that holds a non-negative integer (an integral float such as ``1.0`` counts):
    ``connectorId`` (OCPP 1.6, and 2.0.1's StatusNotification), ``connector_id`` (as some gateways log it),
    2.0.1's ``evse.connectorId``, then 2.0.1's EVSE ids ``evseId`` and ``evse.id`` for payloads that name
    only the EVSE. Other values (strings, booleans, negative or fractional numbers) are skipped.

    Note that a 2.0.1 connector id counts within its EVSE, where a 1.6 connector id counts across the charger.
    """
    if not isinstance(payload, dict):
        return None
    evse = payload.get("evse")
    if not isinstance(evse, dict):
        evse = {}
    for candidate in (
        payload.get("connectorId"),
        payload.get("connector_id"),
        evse.get("connectorId"),
        payload.get("evseId"),
        evse.get("id"),
    ):
        if isinstance(candidate, float) and candidate.is_integer():
            candidate = int(candidate)
        if isinstance(candidate, int) and not isinstance(candidate, bool) and candidate >= 0:
            return candidate
    return None


def _vendor_id_text(vendor_id: str | int) -> str:
    if isinstance(vendor_id, bool) or not isinstance(vendor_id, str | int):
        raise TypeError(f"vendor_id must be a string or an integer, got {type(vendor_id).__name__}")
    text = str(vendor_id)
    if not text:
        raise ValueError("vendor_id must not be empty; pass None to derive the id from identifying fields")
    if text.startswith(f"{HASH_ID_MARKER}:"):
        raise ValueError(f"vendor_id {text!r} would be mistaken for a hashed id")
    return text


def _canonical_value(value: object) -> str:
    """`json.dumps` hook: the fixed text form of datetimes and dates in identifying fields."""
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} is ambiguous; give it an offset")
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot use a {type(value).__name__} as an identifying field value")
