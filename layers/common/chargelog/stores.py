"""The deployment's stores: the one place that turns settings (table, bucket, queue and secret names) into dal stores.

The API's routers, the handlers, and the CLI and local stack where they run logic in-process take their stores from
here and pass them to the logic, which never reads resource names itself. Each store is made once per process and
name (a store holds names only: its AWS client comes from chargelog.aws, whose cache `aws.reset` clears). Each
store's module loads when it is first asked for, so a function pays at cold start only for the stores it uses.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from chargelog.settings import get_settings
from chargelog.vendors import VENDORS

if TYPE_CHECKING:
    from chargelog.dal.archive import RawArchive
    from chargelog.dal.diagnostics import DiagnosticsFiles, DiagnosticsStore
    from chargelog.dal.exports import ExportFiles, ExportStore
    from chargelog.dal.queue import WorkQueue, WorkQueues
    from chargelog.dal.record_archive import RecordArchive
    from chargelog.dal.record_queries import RecordStore
    from chargelog.dal.records import RecordWriter
    from chargelog.dal.secrets import Secret, VendorSecrets
    from chargelog.dal.sources import SourceStore
    from chargelog.dal.state import CollectorStateStore
    from chargelog.logic.collection import CollectionStores


def sources() -> SourceStore:
    return _sources(get_settings().table_name)


def collector_states() -> CollectorStateStore:
    return _collector_states(get_settings().table_name)


def records() -> RecordStore:
    return _records(get_settings().table_name)


def record_writer() -> RecordWriter:
    settings = get_settings()
    return _record_writer(settings.table_name, settings.raw_bucket, settings.retention_days)


def raw_archive() -> RawArchive:
    return _raw_archive(get_settings().raw_bucket)


def record_archive() -> RecordArchive:
    return _record_archive(get_settings().record_archive_bucket)


def exports() -> ExportStore:
    return _exports(get_settings().table_name)


def export_files() -> ExportFiles:
    return _export_files(get_settings().exports_bucket)


def export_queue() -> WorkQueue:
    return _queue(get_settings().export_queue_url)


def work_queues() -> WorkQueues:
    settings = get_settings()
    urls = tuple((vendor, settings.queue_url(vendor)) for vendor in VENDORS)
    return _work_queues(urls, settings.dead_letter_queue_url)


def diagnostics() -> DiagnosticsStore:
    return _diagnostics(get_settings().table_name)


def diagnostics_files(bucket: str | None = None) -> DiagnosticsFiles:
    """The diagnostics bucket (``bucket``: as an S3 notification names it; by default the deployment's)."""
    return _diagnostics_files(bucket or get_settings().diagnostics_bucket)


def cursor_secret() -> Secret:
    from chargelog.dal.secrets import CURSOR_SECRET_CACHE_SECONDS

    return _secret(get_settings().cursor_secret_name, CURSOR_SECRET_CACHE_SECONDS)


def vendor_secrets() -> VendorSecrets:
    return _vendor_secrets(get_settings().vendor_secret_prefix)


def collection() -> CollectionStores:
    """Everything a collection job reads and writes (JobRunner, run_job)."""
    from chargelog.logic.collection import CollectionStores

    return CollectionStores(
        states=collector_states(),
        archive=raw_archive(),
        writer=record_writer(),
        record_archive=record_archive(),
        queues=work_queues(),
        secrets=vendor_secrets(),
    )


# ---------------------------------------------------------------------------------------------- one per name


@cache
def _sources(table_name: str) -> SourceStore:
    from chargelog.dal.sources import SourceStore

    return SourceStore(table_name)


@cache
def _collector_states(table_name: str) -> CollectorStateStore:
    from chargelog.dal.state import CollectorStateStore

    return CollectorStateStore(table_name)


@cache
def _records(table_name: str) -> RecordStore:
    from chargelog.dal.record_queries import RecordStore

    return RecordStore(table_name)


@cache
def _record_writer(table_name: str, raw_bucket: str, retention_days: int) -> RecordWriter:
    from chargelog.dal.records import RecordWriter

    return RecordWriter(table_name, _raw_archive(raw_bucket), retention_days)


@cache
def _raw_archive(bucket: str) -> RawArchive:
    from chargelog.dal.archive import RawArchive

    return RawArchive(bucket)


@cache
def _record_archive(bucket: str) -> RecordArchive:
    from chargelog.dal.record_archive import RecordArchive

    return RecordArchive(bucket)


@cache
def _exports(table_name: str) -> ExportStore:
    from chargelog.dal.exports import ExportStore

    return ExportStore(table_name)


@cache
def _export_files(bucket: str) -> ExportFiles:
    from chargelog.dal.exports import ExportFiles

    return ExportFiles(bucket)


@cache
def _queue(url: str) -> WorkQueue:
    from chargelog.dal.queue import WorkQueue

    return WorkQueue(url)


@cache
def _work_queues(vendor_urls: tuple[tuple[str, str], ...], dead_letter_url: str) -> WorkQueues:
    from chargelog.dal.queue import WorkQueues

    return WorkQueues(dict(vendor_urls), dead_letter_url)


@cache
def _diagnostics(table_name: str) -> DiagnosticsStore:
    from chargelog.dal.diagnostics import DiagnosticsStore

    return DiagnosticsStore(table_name)


@cache
def _diagnostics_files(bucket: str) -> DiagnosticsFiles:
    from chargelog.dal.diagnostics import DiagnosticsFiles

    return DiagnosticsFiles(bucket)


@cache
def _secret(name: str, max_age: int) -> Secret:
    from chargelog.dal.secrets import Secret

    return Secret(name, max_age)


@cache
def _vendor_secrets(prefix: str) -> VendorSecrets:
    from chargelog.dal.secrets import VendorSecrets

    return VendorSecrets(prefix)
