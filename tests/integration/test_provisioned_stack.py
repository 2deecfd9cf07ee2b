"""The template's resources as the local stack creates them in moto's server, and the source store on them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chargelog import aws
from chargelog.dal.sources import SourceStore
from chargelog.errors import ConflictError, NotFoundError
from chargelog.models.sources import Source
from chargelog_local.provision import LocalStack
from chargelog_local.runner import SIMULATORS, LocalOptions, LocalRunner


def test_table_has_ttl_pitr_and_encryption(server_stack: LocalStack) -> None:
    ddb = aws.client("dynamodb")
    name = server_stack.refs["Table"]
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"


@pytest.mark.parametrize("bucket", ["RawBucket", "DiagnosticsBucket"])
def test_buckets_are_private_encrypted_tls_only_and_expire(server_stack: LocalStack, bucket: str) -> None:
    s3 = aws.client("s3")
    name = server_stack.refs[bucket]
    block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert len(block) == 4
    assert all(block.values())
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # The TLS-only deny cannot apply to the local stack's plain HTTP; it is left out, and said so.
    assert f"{bucket}Policy: statement DenyInsecureTransport (TLS only; local traffic is plain HTTP)" in (
        server_stack.local_omissions
    )
    s3.put_object(Bucket=name, Key="probe", Body=b"x")
    assert s3.get_object(Bucket=name, Key="probe")["Body"].read() == b"x"
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert lifecycle[0]["Expiration"]["Days"] > 0


@pytest.mark.parametrize(
    "queue", ["PlugchoiceWorkQueue", "OcpplabWorkQueue", "ChargepilotWorkQueue", "EvenergyWorkQueue"]
)
def test_work_queues_redrive_to_the_dead_letter_queue(server_stack: LocalStack, queue: str) -> None:
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=server_stack.refs[queue], AttributeNames=["All"])[
        "Attributes"
    ]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == server_stack.attributes[("WorkDeadLetterQueue", "Arn")]
    assert int(redrive["maxReceiveCount"]) == 5
    assert attributes["SqsManagedSseEnabled"] == "true"


def _source(source_id: str, vendor: str = "ocpplab", enabled: bool = True) -> Source:
    now = datetime.now(UTC)
    return Source.model_validate(
        {"vendor": vendor, "source_id": source_id, "kind": "charger", "name": source_id, "enabled": enabled}
        | {"created_at": now, "updated_at": now}
    )


def test_source_store_round_trip_and_conditions(server_stack: LocalStack) -> None:
    store = SourceStore(server_stack.refs["Table"])
    store.create(_source("a"))
    store.create(_source("b", enabled=False))
    store.create(_source("x", vendor="plugchoice"))
    with pytest.raises(ConflictError):
        store.create(_source("a"))
    assert [s.source_id for s in store.list(vendor="ocpplab")] == ["a", "b"]
    assert [s.source_id for s in store.list(enabled_only=True)] == ["a", "x"]
    renamed = store.update("ocpplab", "a", {"name": "Bay A"}, datetime.now(UTC))
    assert renamed.name == "Bay A"
    assert store.get("ocpplab", "a") == renamed
    with pytest.raises(NotFoundError):
        store.update("ocpplab", "nope", {"name": "x"}, datetime.now(UTC))
    store.delete("ocpplab", "a")
    assert store.get("ocpplab", "a") is None
    with pytest.raises(NotFoundError):
        store.delete("ocpplab", "a")


def _vendor_secrets(stack: LocalStack) -> dict[str, dict[str, Any]]:
    client = aws.client("secretsmanager")
    return {
        stack.tags[name]["chargelog:vendor"]: json.loads(
            client.get_secret_value(SecretId=stack.refs[name])["SecretString"]
        )
        for name in stack.of_type("AWS::SecretsManager::Secret")
        if "chargelog:vendor" in stack.tags[name]
    }


def test_local_runner_writes_vendor_settings_from_the_environment(
    server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[str] = []
    monkeypatch.setitem(
        SIMULATORS, "evenergy", lambda: ("http://127.0.0.1:4999/v2", {"client_id": "sim"}, lambda: stopped.append("x"))
    )
    environ = {
        "CHARGELOG_OCPPLAB_URL": "https://gateway.example/api",
        "CHARGELOG_OCPPLAB_TOKEN": "jwt-123",
        "CHARGELOG_CHARGEPILOT_API_KEY": "key-1",
        "CHARGELOG_CHARGEPILOT_API_SECRET": "secret-1",
    }
    runner = LocalRunner(LocalOptions(environ=environ))
    runner._configure_vendors(server_stack)

    secrets = _vendor_secrets(server_stack)
    assert secrets["ocpplab"] == {"base_url": "https://gateway.example/api", "token": "jwt-123"}
    # Credentials without a URL: the template's default base URL stays, no simulator is started for it.
    assert secrets["chargepilot"]["base_url"].startswith("https://chargepilot-api")
    assert (secrets["chargepilot"]["api_key"], secrets["chargepilot"]["api_secret"]) == ("key-1", "secret-1")
    assert secrets["evenergy"]["base_url"] == "http://127.0.0.1:4999/v2"
    assert secrets["evenergy"]["client_id"] == "sim"
    # Nothing configured for Plugchoice: its built-in simulator serves it.
    assert secrets["plugchoice"]["base_url"].startswith("http://127.0.0.1:")
    assert secrets["plugchoice"]["base_url"].endswith("/api")
    simulated = {c.vendor for c in runner.connections if c.simulated}
    assert simulated == {"evenergy", "plugchoice"}
    runner.stop()
    assert stopped == ["x"]
    banner_lines = [c.vendor for c in runner.connections]
    assert sorted(banner_lines) == ["chargepilot", "evenergy", "ocpplab", "plugchoice"]


@pytest.mark.parametrize("bucket", ["RecordArchiveBucket", "AthenaResultsBucket"])
def test_the_athena_buckets_are_private_encrypted_and_expire(server_stack: LocalStack, bucket: str) -> None:
    s3 = aws.client("s3")
    name = server_stack.refs[bucket]
    assert all(s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"].values())
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert any(rule.get("Expiration", {}).get("Days", 0) > 0 for rule in lifecycle)


def test_glue_and_athena_are_left_out_locally_and_said_so(server_stack: LocalStack) -> None:
    for name in ("AthenaDatabase", "RecordsTable", "RawPagesTable", "AthenaWorkGroup"):
        assert name not in server_stack.refs
        assert any(omission.startswith(f"{name}: AWS::") for omission in server_stack.local_omissions), name


def test_log_groups_and_the_encrypted_alarm_topic_are_made_and_the_alarms_said_left_out(
    server_stack: LocalStack, template: dict[str, Any]
) -> None:
    logs = aws.client("logs")
    for function in ("WorkerFunction", "DispatcherFunction", "ApiFunction"):
        group = server_stack.refs[f"{function}Logs"]
        assert group.startswith(f"/aws/lambda/{server_stack.stack_name}/")
        (found,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        assert found["retentionInDays"] == template["Parameters"]["LogRetentionDays"]["Default"]
    topic = aws.client("sns").get_topic_attributes(TopicArn=server_stack.refs["AlarmTopic"])["Attributes"]
    assert topic["KmsMasterKeyId"] == server_stack.refs["AlarmTopicKey"]
    assert json.loads(topic["Policy"])["Statement"][0]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    key = aws.client("kms").describe_key(KeyId="alias/" + f"{server_stack.stack_name}-alarms")["KeyMetadata"]
    assert key["KeyId"] == server_stack.refs["AlarmTopicKey"]
    # AlarmEmail is empty by default: its subscription's condition is false, so it is not made.
    assert "AlarmEmailSubscription" not in server_stack.refs
    alarms = sum(1 for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm")
    assert any(o.startswith(f"AWS::CloudWatch::Alarm, {alarms} of them") for o in server_stack.local_omissions)
    assert any(o.startswith("AWS::CloudWatch::Dashboard, 1 of them") for o in server_stack.local_omissions)


def test_the_charger_alert_topic_and_the_alert_queue_are_made_and_a_publish_reaches_a_subscriber(
    server_stack: LocalStack,
) -> None:
    refs = server_stack.refs
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.get_topic_attributes(TopicArn=refs["ChargerAlertTopic"])["Attributes"]
    assert topic["KmsMasterKeyId"] == refs["ChargerAlertTopicKey"] != refs["AlarmTopicKey"]
    key = aws.client("kms").describe_key(KeyId=f"alias/{server_stack.stack_name}-charger-alerts")["KeyMetadata"]
    assert key["KeyId"] == refs["ChargerAlertTopicKey"]
    assert "ChargerAlertEmailSubscription" not in refs  # ChargerAlertEmail is empty by default
    attributes = sqs.get_queue_attributes(QueueUrl=refs["AlertQueue"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == server_stack.attributes[("AlertDeadLetterQueue", "Arn")]
    assert attributes["SqsManagedSseEnabled"] == "true"
    # moto's server delivers what is published to a queue subscribed to the topic, with the message attributes.
    tap = sqs.create_queue(QueueName=f"{server_stack.stack_name}-tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=refs["ChargerAlertTopic"], Protocol="sqs", Endpoint=tap_arn)
    sns.publish(
        TopicArn=refs["ChargerAlertTopic"],
        Subject="[chargelog] OPEN offline on CP-1 (ocpplab)",
        Message="a charger alert",
        MessageAttributes={"state": {"DataType": "String", "StringValue": "open"}},
    )
    (message,) = sqs.receive_message(QueueUrl=tap, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(message["Body"])
    assert (envelope["Subject"], envelope["Message"]) == (
        "[chargelog] OPEN offline on CP-1 (ocpplab)",
        "a charger alert",
    )
    assert envelope["MessageAttributes"]["state"]["Value"] == "open"
