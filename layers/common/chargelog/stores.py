"""The deployment's stores: the one place that turns settings (table, bucket, queue and secret names) into dal stores.

The API's routers, the handlers, and the CLI and local stack where they run logic in-process take their stores from
here and pass them to the logic, which never reads resource names itself. Each store is made once per process and
name (a store holds names only: its AWS client comes from chargelog.aws, whose cache `aws.reset` clears). Each
store's module loads when it is first asked for, so a function pays at cold start only for the stores it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from chargelog.settings import get_health_thresholds, get_settings
from chargelog.vendors import VENDORS

if TYPE_CHECKING:
    from chargelog.dal.alert_notices import AlertNotices
    from chargelog.dal.alert_notifications import AlertNotificationStore
    from chargelog.dal.alerts import AlertStore, HealthStore
    from chargelog.dal.archive import RawArchive
    from chargelog.dal.diagnostics import DiagnosticsFiles, DiagnosticsStore
    from chargelog.dal.exports import ExportFiles, ExportStore
    from chargelog.dal.queue import WorkQueue, WorkQueues
    from chargelog.dal.record_archive import RecordArchive, RecordArchiveReader
    from chargelog.dal.record_queries import RecordStore
    from chargelog.dal.records import RecordWriter
    from chargelog.dal.replays import ReplayStore
    from chargelog.dal.secrets import Secret, VendorSecrets
    from chargelog.dal.sources import SourceStore
    from chargelog.dal.state import CollectorStateStore
    from chargelog.logic.alert_notifications import AlertChannel, AlertNotifierStores
    from chargelog.logic.charger_health.monitor import ChargerHealthStores
    from chargelog.logic.charger_health.sweep import SweepStores
    from chargelog.logic.collection import CollectionStores
    from chargelog.logic.replay import ReplayStores


@cache
def _store[Store](kind: Callable[..., Store], *names: Any) -> Store:
    """One store per kind and names, for the whole process (names change only when a test switches settings)."""
    return kind(*names)


def sources() -> SourceStore:
    from chargelog.dal.sources import SourceStore

    return _store(SourceStore, get_settings().table_name)


def collector_states() -> CollectorStateStore:
    from chargelog.dal.state import CollectorStateStore

    return _store(CollectorStateStore, get_settings().table_name)


def alerts() -> AlertStore:
    from chargelog.dal.alerts import AlertStore

    settings = get_settings()
    return _store(AlertStore, settings.table_name, settings.alert_retention_days)


def charger_health() -> HealthStore:
    """Each charger's health state (the detectors' state, per vendor and source)."""
    from chargelog.dal.alerts import HealthStore

    return _store(HealthStore, get_settings().table_name)


def records() -> RecordStore:
    from chargelog.dal.record_queries import RecordStore

    return _store(RecordStore, get_settings().table_name)


def record_writer() -> RecordWriter:
    from chargelog.dal.records import RecordWriter

    settings = get_settings()
    return _store(RecordWriter, settings.table_name, raw_archive(), settings.hot_retention_days)


def raw_archive() -> RawArchive:
    from chargelog.dal.archive import RawArchive

    return _store(RawArchive, get_settings().raw_bucket)


def record_archive() -> RecordArchive:
    from chargelog.dal.record_archive import RecordArchive

    return _store(RecordArchive, get_settings().record_archive_bucket)


def replays() -> ReplayStore:
    from chargelog.dal.replays import ReplayStore

    return _store(ReplayStore, get_settings().table_name)


def record_archive_reader() -> RecordArchiveReader:
    from chargelog.dal.record_archive import RecordArchiveReader

    return _store(RecordArchiveReader, get_settings().record_archive_bucket)


def exports() -> ExportStore:
    from chargelog.dal.exports import ExportStore

    return _store(ExportStore, get_settings().table_name)


def export_files() -> ExportFiles:
    from chargelog.dal.exports import ExportFiles

    return _store(ExportFiles, get_settings().exports_bucket)


def export_queue() -> WorkQueue:
    from chargelog.dal.queue import WorkQueue

    return _store(WorkQueue, get_settings().export_queue_url)


def work_queues() -> WorkQueues:
    settings = get_settings()
    urls = tuple((vendor, settings.queue_url(vendor)) for vendor in VENDORS)
    return _store(_work_queues, urls, settings.dead_letter_queue_url)


def _work_queues(vendor_urls: tuple[tuple[str, str], ...], dead_letter_url: str) -> WorkQueues:
    """WorkQueues from hashable names (it takes a mapping, which the cache cannot key on)."""
    from chargelog.dal.queue import WorkQueues

    return WorkQueues(dict(vendor_urls), dead_letter_url)


def diagnostics() -> DiagnosticsStore:
    from chargelog.dal.diagnostics import DiagnosticsStore

    return _store(DiagnosticsStore, get_settings().table_name)


def diagnostics_files(bucket: str | None = None) -> DiagnosticsFiles:
    """The diagnostics bucket (``bucket``: as an S3 notification names it; by default the deployment's)."""
    from chargelog.dal.diagnostics import DiagnosticsFiles

    return _store(DiagnosticsFiles, bucket or get_settings().diagnostics_bucket)


def cursor_secret() -> Secret:
    from chargelog.dal.secrets import CURSOR_SECRET_CACHE_SECONDS, Secret

    return _store(Secret, get_settings().cursor_secret_name, CURSOR_SECRET_CACHE_SECONDS)


def upload_token_secret() -> Secret:
    """The key of the upload secrets (the API's only: empty name elsewhere)."""
    from chargelog.dal.secrets import CURSOR_SECRET_CACHE_SECONDS, Secret

    return _store(Secret, get_settings().upload_token_secret_name, CURSOR_SECRET_CACHE_SECONDS)


def vendor_secrets() -> VendorSecrets:
    from chargelog.dal.secrets import VendorSecrets

    return _store(VendorSecrets, get_settings().vendor_secret_prefix)


def collection() -> CollectionStores:
    """Everything a collection job reads and writes (JobRunner, run_job); with the charger health detectors where the
    function announces alerts (the worker: CHARGELOG_ALERT_QUEUE_URL set)."""
    from chargelog.logic.collection import CollectionStores

    return CollectionStores(
        states=collector_states(),
        archive=raw_archive(),
        writer=record_writer(),
        queues=work_queues(),
        secrets=vendor_secrets(),
        record_archive=record_archive(),
        health=charger_health_stores() if get_settings().alert_queue_url else None,
    )


def charger_health_stores() -> ChargerHealthStores:
    """What the charger health detectors write: state items, alert items, the alert queue; and their thresholds."""
    from chargelog.logic.charger_health.monitor import ChargerHealthStores

    return ChargerHealthStores(
        health=charger_health(), alerts=alerts(), notices=alert_notices(), thresholds=get_health_thresholds()
    )


def health_sweep() -> SweepStores:
    """What the health monitor's pass reads and writes (chargelog.logic.charger_health.sweep)."""
    from chargelog.logic.charger_health.sweep import SweepStores

    return SweepStores(detectors=charger_health_stores(), records=records(), collector_states=collector_states())


def replay() -> ReplayStores:
    """Everything a replay job reads and writes (ReplayRunner, run_replay)."""
    from chargelog.logic.replay import ReplayStores

    return ReplayStores(
        replays=replays(),
        archive=raw_archive(),
        writer=record_writer(),
        record_archive=record_archive(),
        queues=work_queues(),
        health=charger_health_stores() if get_settings().alert_queue_url else None,
    )


def alert_notices() -> AlertNotices:
    """The AlertQueue: where the worker and the health monitor announce alert transitions."""
    from chargelog.dal.alert_notices import AlertNotices

    return _store(AlertNotices, get_settings().alert_queue_url)


def alert_notifications() -> AlertNotificationStore:
    from chargelog.dal.alert_notifications import AlertNotificationStore

    return _store(AlertNotificationStore, get_settings().table_name)


def alert_channels() -> tuple[AlertChannel, ...]:
    """Where notifications go, in order: the webhook (only when AlertWebhookSecretArn names a secret), the topic."""
    settings = get_settings()
    return _store(_alert_channels, settings.charger_alert_topic_arn, settings.alert_webhook_secret_arn)


def _alert_channels(topic_arn: str, webhook_secret_arn: str) -> tuple[AlertChannel, ...]:
    from chargelog.dal.alert_channels import WEBHOOK_SECRET_CACHE_SECONDS, AlertWebhook, SnsAlertTopic
    from chargelog.dal.secrets import Secret

    topic = SnsAlertTopic(topic_arn)
    if not webhook_secret_arn:
        return (topic,)
    return (AlertWebhook(Secret(webhook_secret_arn, WEBHOOK_SECRET_CACHE_SECONDS)), topic)


def alert_notifier() -> AlertNotifierStores:
    """Everything the alert notifier reads and writes (chargelog.logic.alert_notifications.notify). The alert is read
    and claimed on its own item; chargelog.dal.alerts' AlertStore, which writes it, answers the same calls."""
    from chargelog.logic.alert_notifications import AlertNotifierStores

    return AlertNotifierStores(alerts=alerts(), claims=alerts(), rate=alert_notifications(), channels=alert_channels())
