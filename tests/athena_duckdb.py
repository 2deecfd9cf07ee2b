"""docs/athena.md's queries run with DuckDB over a copy of the record archive, as Athena's ``records`` table reads it:
the columns and partition keys from the Glue table in template.yaml, the partitions from the Hive-style keys
(``hive_partitioning``), gzip from the name. DuckDB has no ``json_extract_scalar``; a macro maps it to
``json_extract_string``."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from chargelog import aws
from chargelog.dal.record_archive import RECORDS_PREFIX
from chargelog_local.provision import LocalStack
from chargelog_local.template import load_template

DOC = Path(__file__).resolve().parents[1] / "docs" / "athena.md"
DUCKDB_TYPES = {"string": "VARCHAR", "int": "INTEGER"}
JSON_COLUMNS = {"payload", "result", "extracted"}


def documented_queries() -> dict[str, str]:
    """The fenced ``sql`` blocks of docs/athena.md that name themselves (``-- query: <name>``)."""
    queries = {}
    for block in re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL):
        if match := re.match(r"-- query: (\w+)\n", block):
            queries[match.group(1)] = block
    return queries


def download_archive(stack: LocalStack, into: Path) -> tuple[int, int]:
    """Every object under records/ of the archive bucket, at its key below ``into``; returns how many, and bytes."""
    s3 = aws.client("s3")
    bucket = stack.refs["RecordArchiveBucket"]
    total = count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{RECORDS_PREFIX}/"):
        for item in page.get("Contents", []):
            path = into / item["Key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(path))
            total += item["Size"]
            count += 1
    return count, total


def duckdb_over(root: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB database whose ``records`` view reads the archive as the template's Glue table does."""
    table = next(
        r["Properties"]["TableInput"]
        for r in load_template()["Resources"].values()
        if r["Type"] == "AWS::Glue::Table" and r["Properties"]["TableInput"]["Name"] == "records"
    )
    columns = {
        c["Name"]: "JSON" if c["Name"] in JSON_COLUMNS else DUCKDB_TYPES[c["Type"]]
        for c in table["StorageDescriptor"]["Columns"]
    }
    hive_types = {p["Name"]: DUCKDB_TYPES[p["Type"]] for p in table["PartitionKeys"]}
    connection = duckdb.connect()
    connection.execute("CREATE MACRO json_extract_scalar(document, path) AS json_extract_string(document, path)")
    connection.execute(
        f"""CREATE VIEW records AS SELECT * FROM read_json(
            '{root}/{RECORDS_PREFIX}/*/*/*.ndjson.gz', format = 'newline_delimited', compression = 'gzip',
            hive_partitioning = true, hive_types = {hive_types!r}, columns = {columns!r})"""  # noqa: S608 - the test's own folder and template
    )
    return connection
