"""Typed settings, read once from the environment (the template's Globals set them)."""

import os
from functools import cache
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from chargelog.models.alerts import HealthThresholds
    from chargelog.models.diagnostics import UploadLimits


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    stage: str = Field(default="local", alias="CHARGELOG_STAGE")
    table_name: str = Field(alias="CHARGELOG_TABLE")
    raw_bucket: str = Field(alias="CHARGELOG_RAW_BUCKET")
    # Every normalized record the worker stores, also as gzipped NDJSON for Athena (chargelog.dal.record_archive).
    record_archive_bucket: str = Field(alias="CHARGELOG_RECORD_ARCHIVE_BUCKET")
    diagnostics_bucket: str = Field(alias="CHARGELOG_DIAGNOSTICS_BUCKET")
    exports_bucket: str = Field(alias="CHARGELOG_EXPORTS_BUCKET")
    plugchoice_queue_url: str = Field(alias="CHARGELOG_PLUGCHOICE_QUEUE_URL")
    ocpplab_queue_url: str = Field(alias="CHARGELOG_OCPPLAB_QUEUE_URL")
    chargepilot_queue_url: str = Field(alias="CHARGELOG_CHARGEPILOT_QUEUE_URL")
    evenergy_queue_url: str = Field(alias="CHARGELOG_EVENERGY_QUEUE_URL")
    dead_letter_queue_url: str = Field(alias="CHARGELOG_DEAD_LETTER_QUEUE_URL")
    export_queue_url: str = Field(alias="CHARGELOG_EXPORT_QUEUE_URL")
    job_max_receives: int = Field(default=5, ge=1, alias="CHARGELOG_JOB_MAX_RECEIVES")
    # The schedule queues one job per source and adds no other while it waits for a worker, unless it has waited
    # this long: then its message is taken as lost (expired, purged, never sent) and the source gets a new one.
    job_pending_seconds: float = Field(default=3600, gt=0, alias="CHARGELOG_JOB_PENDING_SECONDS")
    initial_history_hours: float = Field(default=24, gt=0, alias="CHARGELOG_INITIAL_HISTORY_HOURS")
    vendor_secret_prefix: str = Field(alias="CHARGELOG_VENDOR_SECRET_PREFIX")
    cursor_secret_name: str = Field(alias="CHARGELOG_CURSOR_SECRET")
    # The table's hot window: a record item expires this many days after its time, or after it was written if that
    # is later (a backfilled old record). Exports starting before the window read the record archive instead.
    hot_retention_days: int = Field(default=30, ge=1, alias="CHARGELOG_HOT_RETENTION_DAYS")
    # How long the record archive keeps every record (its bucket's lifecycle): the oldest a backfill or export reaches.
    archive_retention_days: int = Field(default=400, ge=1, alias="CHARGELOG_ARCHIVE_RETENTION_DAYS")
    # How long the raw archive keeps a fetched page (its bucket's lifecycle): the oldest a replay reaches.
    raw_retention_days: int = Field(default=400, ge=1, alias="CHARGELOG_RAW_RETENTION_DAYS")
    # Collection scheduling (docs/scheduling.md). Minutes between scheduled passes (ScheduleMinutes); which sources a
    # pass polls (SchedulingPolicy: "adaptive", or "every-pass" as before the scheduler); the longest a source goes
    # unpolled under "adaptive" (MaxPollIntervalMinutes); how many workers run one vendor's jobs at once
    # (VendorWorkerConcurrency, the work queues' MaximumConcurrency): they share the vendor's rate limit.
    schedule_minutes: float = Field(default=5, gt=0, alias="CHARGELOG_SCHEDULE_MINUTES")
    scheduling_policy: Literal["adaptive", "every-pass"] = Field(
        default="adaptive", alias="CHARGELOG_SCHEDULING_POLICY"
    )
    max_poll_interval_minutes: float = Field(default=45, gt=0, alias="CHARGELOG_MAX_POLL_INTERVAL_MINUTES")
    worker_concurrency: int = Field(default=2, ge=1, alias="CHARGELOG_WORKER_CONCURRENCY")
    # Each scheduled pass also discovers each vendor's sources and registers the new ones (DiscoverSources).
    discover_sources: bool = Field(default=False, alias="CHARGELOG_DISCOVER_SOURCES")
    max_json_body_bytes: int = Field(default=65_536, ge=1, alias="CHARGELOG_MAX_JSON_BODY_BYTES")
    # The API's only (template.yaml: ApiFunction): where upload addresses point, and how long files are kept.
    upload_base_url: str = Field(default="", alias="CHARGELOG_UPLOAD_BASE_URL")
    diagnostics_retention_days: int = Field(default=90, ge=1, alias="CHARGELOG_DIAGNOSTICS_RETENTION_DAYS")
    # The API's only: the Secrets Manager secret whose value keys the upload secrets (models.diagnostics.derive_secret).
    upload_token_secret_name: str = Field(default="", alias="CHARGELOG_UPLOAD_TOKEN_SECRET")
    # The upload authorizer's and the indexer's (template.yaml: UploadMax* parameters): what one diagnostics request
    # may store, and the parts a multipart upload may have (chargelog.models.diagnostics.UploadLimits).
    upload_max_files_per_request: int = Field(default=10, ge=1, alias="CHARGELOG_UPLOAD_MAX_FILES_PER_REQUEST")
    upload_max_bytes_per_request: int = Field(
        default=100 * 1024 * 1024, ge=1, alias="CHARGELOG_UPLOAD_MAX_BYTES_PER_REQUEST"
    )
    upload_max_multipart_parts: int = Field(default=20, ge=1, alias="CHARGELOG_UPLOAD_MAX_MULTIPART_PARTS")
    # Charger health (docs/health.md). The worker's and the health monitor's: where they announce alert transitions
    # (AlertQueue), and how long an alert is kept (AlertRetentionDays). Their thresholds are
    # chargelog.models.alerts.HealthThresholds, read from the same environment.
    alert_queue_url: str = Field(default="", alias="CHARGELOG_ALERT_QUEUE_URL")
    # How long a resolved alert is kept (the table's TTL, from its resolution); an open alert is kept until it resolves.
    alert_retention_days: int = Field(default=400, ge=1, alias="CHARGELOG_ALERT_RETENTION_DAYS")
    # The alert notifier's: where notifications go (ChargerAlertTopic; the webhook's URL is in the secret, if one is
    # named: AlertWebhookSecretArn), and at most how many per charger per hour (AlertNotificationsPerHour).
    charger_alert_topic_arn: str = Field(default="", alias="CHARGELOG_CHARGER_ALERT_TOPIC_ARN")
    alert_webhook_secret_arn: str = Field(default="", alias="CHARGELOG_ALERT_WEBHOOK_SECRET_ARN")
    alert_notifications_per_hour: int = Field(default=6, ge=1, alias="CHARGELOG_ALERT_NOTIFICATIONS_PER_HOUR")

    def upload_limits(self) -> "UploadLimits":
        from chargelog.models.diagnostics import UploadLimits

        return UploadLimits(
            max_files=self.upload_max_files_per_request,
            max_bytes=self.upload_max_bytes_per_request,
            max_multipart_parts=self.upload_max_multipart_parts,
        )

    def queue_url(self, vendor: str) -> str:
        """The work queue of one vendor's collection jobs."""
        return str(getattr(self, f"{vendor}_queue_url"))


@cache
def get_health_thresholds() -> "HealthThresholds":
    """What counts as a misbehaving charger in this process (the template's threshold parameters)."""
    from chargelog.models.alerts import HealthThresholds

    return HealthThresholds.model_validate(dict(os.environ))


@cache
def get_settings() -> Settings:
    """The settings of this process; a missing variable fails loudly on first use."""
    return Settings.model_validate(dict(os.environ))
