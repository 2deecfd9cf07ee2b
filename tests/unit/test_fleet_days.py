"""Fleet queries read one gsi3 partition per UTC day: a range given with another offset must read the UTC days it
covers, not the days its local dates name."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from chargelog import stores
from chargelog.logic import logs
from chargelog.logic.logs import LogFilters, Scope
from chargelog.models.records import LogRecord, record_id_for
from chargelog_local.provision import LocalStack

PLUS_TWO = timezone(timedelta(hours=2))
MINUS_FIVE = timezone(timedelta(hours=-5))


def heartbeat(at: datetime, n: int) -> LogRecord:
    return LogRecord(
        vendor="ocpplab",
        source_id="cp-1",
        charger_id="cp-1",
        timestamp=at,
        kind="ocpp",
        action="Heartbeat",
        record_id=record_id_for("ocpplab", "cp-1", None, n=n),
        raw={"n": n},
    )


def test_the_utc_days_of_a_range_given_in_another_offset() -> None:
    # 01:00+02:00 on the 21st is 23:00 UTC on the 20th; 01:00+02:00 on the 22nd is 23:00 UTC on the 21st.
    start, end = datetime(2026, 11, 21, 1, tzinfo=PLUS_TWO), datetime(2026, 11, 22, 1, tzinfo=PLUS_TWO)
    assert logs.utc_days(start, end) == [date(2026, 11, 20), date(2026, 11, 21)]
    assert logs.utc_days(start, end, "desc") == [date(2026, 11, 21), date(2026, 11, 20)]
    # 20:00-05:00 on the 21st is 01:00 UTC on the 22nd.
    late = datetime(2026, 11, 21, 20, tzinfo=MINUS_FIVE)
    assert logs.utc_days(late, late) == [date(2026, 11, 22)]


def test_a_fleet_query_in_plus_two_finds_records_of_the_first_and_last_utc_day(stack: LocalStack) -> None:
    first = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # 01:30+02:00 on the 21st
    middle = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    last = datetime(2026, 11, 22, 21, 30, tzinfo=UTC)  # 23:30+02:00 on the 22nd
    stores.record_writer().write([heartbeat(at, n) for n, at in enumerate((first, middle, last))])
    filters = LogFilters(
        start=datetime(2026, 11, 21, 0, 0, tzinfo=PLUS_TWO),
        end=datetime(2026, 11, 22, 23, 59, tzinfo=PLUS_TWO),
        actions=("Heartbeat",),
        limit=100,
    )
    query = logs.plan_query(Scope("fleet"), filters, datetime(2026, 11, 23, tzinfo=UTC))
    found, _ = logs.read_page(query, 100, records=stores.records())
    times = [datetime.fromisoformat(record["timestamp"]) for record in found]
    assert times == [first, middle, last]
