"""Field types models of several kinds share: a charger's id as paths and keys carry it, and a time read in UTC.

Standard library and pydantic only: the upload authorizer and indexer read these without the record models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, StringConstraints

# What a URL path segment can carry to a route (Powertools matches these characters), less '~' and '#' (key
# separators in the table): printable ASCII, no spaces, as OCPP charge point identities are.
ChargerId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-()'!*:@,;=+&$%<>\[\]{}|^]+$")
]


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
