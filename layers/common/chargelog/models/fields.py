"""Field types models of several kinds share: a charger's and a source's id as paths and keys carry them, and a time
read in UTC.

Standard library and pydantic only: the upload authorizer and indexer read these without the record models, and the
worker without the source models (chargelog.models.sources: the API's bodies).
"""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, StringConstraints

# What a URL path segment can carry to a route (Powertools matches these characters), less '~' and '#' (key
# separators in the table): printable ASCII, no spaces, as OCPP charge point identities are.
ChargerId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-()'!*:@,;=+&$%<>\[\]{}|^]+$")
]

# Vendor-side ids: UUIDs, deployment ids, numeric ids... Never '/', '#' or spaces, because the id
# travels in URL paths and in table keys.
SourceId = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"),
]


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
