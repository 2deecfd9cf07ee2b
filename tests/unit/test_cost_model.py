"""The arithmetic of bench/cost.py: item sizes, capacity units, index copies and prices."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from cost_model import (  # bench/ is not a package: on sys.path above
    Index,
    Prices,
    TableLayout,
    Usage,
    item_size,
    item_write_cost,
    number_size,
    per_million,
    provisioned_break_even,
    read_units,
    request_dollars,
    s3_request_class,
    sqs_billed_requests,
    storage_dollars_per_month,
    stored_bytes,
    write_units,
)

LAYOUT = TableLayout(
    keys=("pk", "sk"),
    indexes=(
        Index("by_action", ("gsi1pk", "gsi1sk"), "ALL"),
        Index("keys", ("gsi2pk",), "KEYS_ONLY"),
        Index("some", ("gsi3pk",), "INCLUDE", ("note",)),
    ),
)


def s(text: str) -> dict[str, str]:
    return {"S": text}


def test_item_size_is_names_plus_values() -> None:
    assert item_size({"pk": s("abc"), "n": {"N": "12345"}, "ok": {"BOOL": True}}) == (2 + 3) + (1 + 4) + (2 + 1)
    assert item_size({"é": s("ü")}) == 4  # UTF-8 bytes
    assert item_size({"m": {"M": {"a": s("xy")}}, "l": {"L": [s("z")]}}) == (1 + 3 + 1 + 1 + 2) + (1 + 3 + 1 + 1)


@pytest.mark.parametrize(("number", "size"), [("0", 2), ("12", 2), ("123", 3), ("1700000000", 2), ("0.001", 2)])
def test_a_number_is_a_byte_per_two_significant_digits_plus_one(number: str, size: int) -> None:
    assert number_size(number) == size


def test_write_and_read_units_round_up_per_kb_and_per_4kb() -> None:
    assert [write_units(n) for n in (0, 1, 1024, 1025, 3000)] == [1, 1, 1, 2, 3]
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(4097, consistent=False) == 1
    assert read_units(0, consistent=False) == 0.5  # a read that finds nothing still costs half a unit


def test_a_new_item_writes_the_table_and_each_index_it_is_in_sized_by_the_projection() -> None:
    item = {"pk": s("p"), "sk": s("s"), "gsi1pk": s("a"), "gsi1sk": s("s"), "gsi2pk": s("k"), "body": s("x" * 2000)}
    cost = item_write_cost(LAYOUT, None, item)
    assert cost.table == 2
    assert cost.indexes == {"by_action": 2, "keys": 1}  # not in "some": no gsi3pk
    assert cost.total == 5


def test_rewriting_the_same_item_writes_the_table_only_and_a_failed_condition_nothing_else() -> None:
    item = {"pk": s("p"), "sk": s("s"), "gsi1pk": s("a"), "gsi1sk": s("s")}
    assert item_write_cost(LAYOUT, item, dict(item)).indexes == {}
    assert item_write_cost(LAYOUT, item, dict(item)).table == 1
    assert item_write_cost(LAYOUT, None, item, succeeded=False).indexes == {}


def test_a_changed_index_key_is_a_delete_and_a_put_and_transactions_double_the_table() -> None:
    before = {"pk": s("p"), "sk": s("s"), "gsi1pk": s("a"), "gsi1sk": s("1")}
    after = {**before, "gsi1pk": s("b")}
    assert item_write_cost(LAYOUT, before, after).indexes == {"by_action": 2}
    assert item_write_cost(LAYOUT, before, None).indexes == {"by_action": 1}
    assert item_write_cost(LAYOUT, None, before, transactional=True).table == 2


def test_stored_bytes_count_each_copy_with_its_overhead() -> None:
    item = {"pk": s("p"), "sk": s("s"), "gsi2pk": s("k"), "gsi3pk": s("q"), "note": s("n"), "big": s("x" * 100)}
    stored = stored_bytes(LAYOUT, item)
    assert stored["table"] == item_size(item) + 100
    assert stored["keys"] == item_size({"pk": s("p"), "sk": s("s"), "gsi2pk": s("k")}) + 100
    assert stored["some"] == item_size({"pk": s("p"), "sk": s("s"), "gsi3pk": s("q"), "note": s("n")}) + 100
    assert "by_action" not in stored


def test_the_layout_is_read_from_the_templates_table() -> None:
    layout = TableLayout.from_template(
        {
            "KeySchema": [{"AttributeName": "sk", "KeyType": "RANGE"}, {"AttributeName": "pk", "KeyType": "HASH"}],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "g",
                    "KeySchema": [{"AttributeName": "gpk", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a"]},
                }
            ],
        }
    )
    assert layout == TableLayout(("pk", "sk"), (Index("g", ("gpk",), "INCLUDE", ("a",)),))


def test_request_classes_and_sqs_chunks() -> None:
    assert (s3_request_class("PutObject"), s3_request_class("ListObjectsV2")) == ("PUT", "PUT")
    assert (s3_request_class("GetObject"), s3_request_class("HeadObject")) == ("GET", "GET")
    assert s3_request_class("DeleteObject") == "free"
    assert [sqs_billed_requests(n) for n in (0, 65536, 65537)] == [1, 1, 2]


def test_dollars_per_million_records() -> None:
    prices = Prices()
    usage = Usage(
        write_units=2_000_000,
        read_units=1_000_000,
        s3_put=1000,
        s3_get=10_000,
        sqs_requests=1_000_000,
        secrets_calls=10_000,
        lambda_gb_seconds=1000,
        lambda_requests=1_000_000,
    )
    dollars = request_dollars(usage, prices)
    assert dollars["dynamodb"] == pytest.approx(2 * 0.625 + 0.125)
    assert dollars["s3"] == pytest.approx(0.005 + 0.004)
    assert dollars["sqs"] == pytest.approx(0.40)
    assert dollars["secrets_manager"] == pytest.approx(0.05)
    assert dollars["lambda"] == pytest.approx(1000 * 0.0000133334 + 0.20)
    scaled = per_million(dollars, 500_000)
    assert scaled["dynamodb"] == pytest.approx(2 * dollars["dynamodb"])
    assert scaled["total"] == pytest.approx(2 * sum(dollars.values()))
    assert per_million(dollars, 0)["total"] == 0


def test_provisioned_capacity_breaks_even_at_about_a_third_used() -> None:
    even = provisioned_break_even(Prices())
    assert even["write"] == pytest.approx(0.00065 / (3600 * 0.625e-6))  # ~29 %
    assert 0.2 < even["read"] < 0.4


def test_table_storage_is_priced_for_the_hot_window_and_each_bucket_for_its_own() -> None:
    import cost  # bench/cost.py, on sys.path above

    from chargelog_local.template import load_template

    retention = cost._retention_days(load_template())
    assert retention == {"dynamodb": 30, "RawBucket": 400, "RecordArchiveBucket": 400}
    prices = Prices()
    per_record = {"RawBucket/raw": 300.0, "RecordArchiveBucket/records": 80.0}
    kept = cost._over_retention(4000.0, per_record, prices, retention)
    month = storage_dollars_per_month(4000.0 * 1e6, 380.0 * 1e6, prices)
    assert kept["dynamodb"] == pytest.approx(month["dynamodb"] * 30 / 30.4)
    assert kept["s3"] == pytest.approx(month["s3"] * 400 / 30.4)
    longer = cost._over_retention(4000.0, per_record, prices, retention | {"dynamodb": 60, "RawBucket": 100})
    assert longer["dynamodb"] == pytest.approx(2 * kept["dynamodb"])
    assert longer["s3"] == pytest.approx(month["s3"] * (300 * 100 + 80 * 400) / 380 / 30.4)


def test_the_bench_collects_on_the_templates_schedule() -> None:
    import cost  # bench/cost.py, on sys.path above

    from chargelog_local.template import load_template

    template = load_template()
    assert cost._schedule_seconds(template) == template["Parameters"]["ScheduleMinutes"]["Default"] * 60 == 300
