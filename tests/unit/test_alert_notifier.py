"""The alert notifier, on the template's resources in moto and a webhook receiver on 127.0.0.1: each alert transition
reaches the webhook and the ChargerAlertTopic exactly once however often it is announced or delivered; a flapping
charger is held to AlertNotificationsPerHour and told afterwards how many were held back; a failing webhook gives the
notification back for the retry; the webhook's URL is never logged."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

import alert_notifier_handler
from chargelog import aws
from chargelog.dal.alert_channels import WebhookError, slack_escaped, webhook_payload, webhook_target
from chargelog.dal.alert_notices import AlertNotices
from chargelog.dal.alerts import alert_key
from chargelog.logic.alert_notifications import notification_subject, render
from chargelog.models.alert_notices import AlertNotice
from chargelog.models.alerts import Alert, alert_id_for
from chargelog.observability import logger
from chargelog.settings import get_settings
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import sqs_event
from conftest import REGION, load_event

HOOK_TOKEN = "XyZsecretWebhookToken0123456789"  # the part of a Slack webhook URL that lets anyone post
SLACK_URL = f"https://hooks.slack.com/services/T000/B000/{HOOK_TOKEN}"
START = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------- the webhook receiver


@dataclass
class Receiver:
    """A Slack-compatible webhook on 127.0.0.1: records each POST, answers with ``answers`` in turn, then 200."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    def accepted(self) -> list[dict[str, Any]]:
        return [post["body"] for post in self.posts if post["status"] == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    lock = threading.Lock()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"null")
            with lock:
                status = found.answers.pop(0) if found.answers else 200
                found.posts.append({"path": self.path, "status": status, "body": body})
            self.send_response(status)
            if status in (301, 302, 307, 308):
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"invalid_payload")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/{HOOK_TOKEN}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------------------------------------- the notifier


class Clock(datetime):
    """``datetime`` for the handler, whose ``now`` is the test's."""

    current = START

    @classmethod
    def now(cls, tz: Any = None) -> Clock:
        return cls.current  # type: ignore[return-value]


@dataclass
class Notifier:
    stack: LocalStack
    tap_url: str  # an SQS queue subscribed to the ChargerAlertTopic
    delivered: list[dict[str, Any]] = field(default_factory=list)

    @property
    def table(self) -> Any:
        return aws.table(self.stack.refs["Table"])

    def put(self, alert: Alert) -> Alert:
        """The alert's item, as chargelog.dal.alerts writes it (only the fields this reads, and the keys)."""
        self.table.put_item(Item={**alert_key(alert.alert_id), **alert.model_dump(mode="json")})
        return alert

    def resolve(self, alert: Alert, at: datetime) -> Alert:
        resolved = alert.model_copy(update={"state": "resolved", "resolved_at": at, "resolution": "Available again"})
        self.table.update_item(
            Key=alert_key(alert.alert_id),
            UpdateExpression="SET #state = :state, resolved_at = :at, resolution = :why",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":state": "resolved", ":at": at.isoformat(), ":why": resolved.resolution},
        )
        return resolved

    def notified(self, alert: Alert) -> set[str]:
        item = self.table.get_item(Key=alert_key(alert.alert_id), ConsistentRead=True)["Item"]
        return set(item.get("notified", set()))

    def announce(self, *transitions: tuple[Alert, str]) -> None:
        """What the worker or the health monitor does on an alert's transition."""
        AlertNotices(get_settings().alert_queue_url).send((alert.alert_id, state) for alert, state in transitions)

    def receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            batch = aws.client("sqs").receive_message(
                QueueUrl=self.stack.refs["AlertQueue"], MaxNumberOfMessages=10, AttributeNames=["All"]
            )
            if not batch.get("Messages"):
                return messages
            messages += batch["Messages"]

    def deliver(self, messages: list[dict[str, Any]], at: datetime | None = None) -> dict[str, Any]:
        """Lambda's SQS event source: the messages as one batch to the handler; the batch's failures as it answers."""
        Clock.current = at or Clock.current
        event = sqs_event(messages, self.stack.attributes[("AlertQueue", "Arn")], REGION)
        context = LocalLambdaContext(
            function_name="AlertNotifierFunction", memory_limit_in_mb=512, timeout_seconds=60, region=REGION
        )
        try:
            result = dict(alert_notifier_handler.lambda_handler(event, context))
        except BatchProcessingError:  # every record failed
            result = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
        self.delivered.append(result)
        return result

    def announce_and_deliver(self, *transitions: tuple[Alert, str], at: datetime | None = None) -> dict[str, Any]:
        self.announce(*transitions)
        return self.deliver(self.receive(), at)

    def published(self) -> list[dict[str, Any]]:
        """The SNS envelopes the topic delivered to the subscribed queue."""
        found = []
        while True:
            batch = aws.client("sqs").receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10)
            if not batch.get("Messages"):
                return found
            found += [json.loads(m["Body"]) for m in batch["Messages"]]


@pytest.fixture
def notifier(stack: LocalStack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Notifier:
    """The template's notifier environment, the webhook's secret naming the receiver, a queue on the topic."""
    secret_arn = aws.client("secretsmanager").create_secret(
        Name=f"{stack.stack_name}/alert-webhook", SecretString=json.dumps({"url": receiver.url})
    )["ARN"]
    monkeypatch.setenv("CHARGELOG_ALERT_WEBHOOK_SECRET_ARN", secret_arn)
    get_settings.cache_clear()
    sqs = aws.client("sqs")
    tap_url = sqs.create_queue(QueueName=f"{stack.stack_name}-tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=stack.refs["ChargerAlertTopic"], Protocol="sqs", Endpoint=tap_arn)
    monkeypatch.setattr(alert_notifier_handler, "datetime", Clock)
    Clock.current = START
    return Notifier(stack, tap_url)


def an_alert(charger_id: str = "CP-1", episode: str = "ocpplab:1", at: datetime = START, **changes: Any) -> Alert:
    alert = Alert(
        alert_id=alert_id_for("ocpplab", charger_id, charger_id, "boot_loop", None, episode),
        kind="boot_loop",
        state="open",
        charger_id=charger_id,
        vendor="ocpplab",
        source_id=charger_id,
        opened_at=at,
        summary="4 boots in 12 minutes",
        evidence=[episode],
    )
    return alert.model_copy(update=changes)


def failed(result: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in result["batchItemFailures"]]


# ---------------------------------------------------------------------------------------------- once per transition


def test_each_transition_reaches_the_webhook_and_the_topic_once_however_often_it_is_announced_or_delivered(
    notifier: Notifier, receiver: Receiver
) -> None:
    alert = notifier.put(an_alert())
    # The worker and the health monitor both announce the opening; SQS delivers each message twice.
    notifier.announce((alert, "open"))
    notifier.announce((alert, "open"))
    messages = notifier.receive()
    assert len(messages) == 2
    assert failed(notifier.deliver(messages)) == []
    assert failed(notifier.deliver(messages)) == []  # a redelivery: its delete was lost
    resolved = notifier.resolve(alert, START + timedelta(minutes=20))
    for _ in range(2):
        notifier.announce((resolved, "resolved"), (resolved, "resolved"))  # one message: sent once per call
    messages = notifier.receive()
    assert len(messages) == 2
    notifier.deliver(messages + messages)  # one batch holding each twice

    texts = [post["text"] for post in receiver.accepted()]
    assert texts == [
        ":rotating_light: OPEN boot_loop on CP-1 (ocpplab) \u2013 4 boots in 12 minutes",
        ":white_check_mark: RESOLVED boot_loop on CP-1 (ocpplab) \u2013 Available again (opened 2026-11-20 12:00 UTC)",
    ]
    assert [post["transition"] for post in receiver.accepted()] == ["open", "resolved"]
    assert receiver.accepted()[0]["alert"] == alert.model_dump(mode="json")
    assert receiver.accepted()[1]["alert"]["state"] == "resolved"
    assert len(receiver.posts) == 2
    assert notifier.notified(alert) == {"open", "resolved"}

    published = notifier.published()
    assert [envelope["Subject"] for envelope in published] == [
        "[chargelog] OPEN boot_loop on CP-1 (ocpplab)",
        "[chargelog] RESOLVED boot_loop on CP-1 (ocpplab)",
    ]
    for envelope, state in zip(published, ("open", "resolved"), strict=True):
        attributes = {name: value["Value"] for name, value in envelope["MessageAttributes"].items()}
        assert attributes == {"kind": "boot_loop", "state": state, "vendor": "ocpplab", "charger_id": "CP-1"}
        text, _, document = envelope["Message"].partition("\n\n")
        assert text.startswith((":rotating_light: OPEN", ":white_check_mark: RESOLVED"))
        assert json.loads(document)["alert_id"] == alert.alert_id


def test_a_notice_for_an_alert_that_is_gone_or_not_yet_resolved(notifier: Notifier, receiver: Receiver) -> None:
    gone = an_alert("CP-GONE")  # never written (or expired)
    assert failed(notifier.announce_and_deliver((gone, "open"))) == []
    still_open = notifier.put(an_alert("CP-2"))
    notifier.announce((still_open, "resolved"))  # the resolution's write not visible yet: tried again later
    (message,) = notifier.receive()
    assert failed(notifier.deliver([message])) == [message["MessageId"]]
    assert receiver.posts == []
    assert notifier.published() == []
    assert notifier.notified(still_open) == set()


# ---------------------------------------------------------------------------------------------- the hourly limit


def test_a_flapping_charger_gets_its_hourly_notifications_and_then_hears_how_many_were_held_back(
    notifier: Notifier, receiver: Receiver
) -> None:
    per_hour = get_settings().alert_notifications_per_hour
    assert per_hour == 6  # the template's AlertNotificationsPerHour
    episodes = []
    for n in range(10):  # 20 transitions in 50 minutes: ten boot loops, each resolved
        opened_at = START + timedelta(minutes=5 * n)
        alert = notifier.put(an_alert("CP-FLAP", f"ocpplab:{n}", opened_at))
        notifier.announce_and_deliver((alert, "open"), at=opened_at)
        resolved = notifier.resolve(alert, opened_at + timedelta(minutes=2))
        notifier.announce_and_deliver((resolved, "resolved"), at=opened_at + timedelta(minutes=2))
        episodes.append(alert)
    # Another charger is not held back by this one's limit.
    other = notifier.put(an_alert("CP-CALM"))
    notifier.announce_and_deliver((other, "open"), at=START + timedelta(minutes=55))

    flapping = [post for post in receiver.accepted() if post["alert"]["charger_id"] == "CP-FLAP"]
    assert len(flapping) == per_hour
    assert all("held back" not in post["text"] for post in receiver.accepted())
    assert len(notifier.published()) == per_hour + 1
    assert notifier.notified(episodes[-1]) == {"open", "open:suppressed", "resolved", "resolved:suppressed"}

    # The next hour: the 7th notification sent says how many were held back, and only it.
    later = START + timedelta(hours=1, minutes=10)
    alert = notifier.put(an_alert("CP-FLAP", "ocpplab:later", later))
    notifier.announce_and_deliver((alert, "open"), at=later)
    resolved = notifier.resolve(alert, later + timedelta(minutes=1))
    notifier.announce_and_deliver((resolved, "resolved"), at=later + timedelta(minutes=1))
    seventh, eighth = receiver.accepted()[-2:]
    assert seventh["text"].endswith("[14 earlier notifications for CP-FLAP held back by the hourly limit]")
    assert seventh["suppressed"] == 14
    assert "held back" not in eighth["text"]
    assert eighth["suppressed"] == 0
    (envelope, _) = notifier.published()
    assert "[14 earlier notifications for CP-FLAP held back" in envelope["Message"]


# ---------------------------------------------------------------------------------------------- failures


def test_a_failing_webhook_gives_the_notification_back_and_the_retry_sends_it_once(
    notifier: Notifier, receiver: Receiver
) -> None:
    first, second = notifier.put(an_alert("CP-A")), notifier.put(an_alert("CP-B"))
    receiver.answers = [500]  # the first POST fails
    notifier.announce((first, "open"))
    notifier.announce((second, "open"))
    messages = notifier.receive()
    result = notifier.deliver(messages)
    (failed_id,) = failed(result)
    (failed_message,) = [m for m in messages if m["MessageId"] == failed_id]
    (failed_alert,) = [a for a in (first, second) if a.alert_id in failed_message["Body"]]
    assert notifier.notified(failed_alert) == set()  # released: the retry may claim it
    assert len(notifier.published()) == 1  # the webhook goes first: the failed one reached no one

    notifier.deliver([failed_message])  # SQS delivers it again after the visibility timeout
    notifier.deliver([failed_message])  # and, its delete lost, once more
    assert [post["status"] for post in receiver.posts] == [500, 200, 200]
    assert sorted(post["alert"]["charger_id"] for post in receiver.accepted()) == ["CP-A", "CP-B"]
    assert notifier.notified(failed_alert) == {"open"}
    assert len(notifier.published()) == 1


def test_a_redirect_is_not_followed_but_fails(notifier: Notifier, receiver: Receiver) -> None:
    alert = notifier.put(an_alert())
    receiver.answers = [302]
    result = notifier.announce_and_deliver((alert, "open"))
    assert len(failed(result)) == 1
    assert [post["path"] for post in receiver.posts] == [f"/services/T000/B000/{HOOK_TOKEN}"]  # not /elsewhere


def test_the_webhook_url_is_never_logged(
    notifier: Notifier,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    # What a deployed function's logs may hold: every logger at INFO (botocore's DEBUG lines, which print whole
    # responses, are never on in Lambda), chargelog's own Logger at DEBUG (LogLevel may be).
    caplog.set_level(logging.INFO)
    level = logger.log_level
    logger.setLevel(logging.DEBUG)
    try:
        receiver.answers = [500, 302]
        alert = notifier.put(an_alert())
        for _ in range(3):  # a 500, a 302, then a success
            notifier.announce_and_deliver((alert, "open"))
        # A secret whose URL is refused (plain http elsewhere), and one that is unreachable.
        for n, url in enumerate((f"http://hooks.example.com/{HOOK_TOKEN}", f"https://127.0.0.1:1/{HOOK_TOKEN}")):
            aws.client("secretsmanager").put_secret_value(
                SecretId=get_settings().alert_webhook_secret_arn, SecretString=url
            )
            aws.reset()  # the cached value
            other = notifier.put(an_alert("CP-X", f"ocpplab:{n}"))
            assert len(failed(notifier.announce_and_deliver((other, "open")))) == 1
    finally:
        handler.setStream(previous)  # type: ignore[arg-type]
        logger.setLevel(level)
    logged = stream.getvalue() + capsys.readouterr().out + caplog.text
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(line.get("exception_name") == "WebhookError" for line in lines)
    assert any(line.get("outcome") == "sent" for line in lines)
    assert HOOK_TOKEN not in logged
    assert "/services/T000" not in logged
    assert "hooks.example.com" not in logged


# ---------------------------------------------------------------------------------------------- the pieces


def test_alert_notices_sends_each_distinct_transition_in_batches(stack: LocalStack) -> None:
    alerts = [an_alert(f"CP-{n}") for n in range(11)]
    notices = AlertNotices(get_settings().alert_queue_url)
    assert notices.send([(a.alert_id, "open") for a in alerts] + [(alerts[0].alert_id, "open")]) == 11
    assert notices.send([]) == 0
    received = Notifier(stack, "").receive()
    bodies = {AlertNotice.model_validate_json(m["Body"]) for m in received}
    assert bodies == {AlertNotice(alert_id=a.alert_id, state="open") for a in alerts}
    with pytest.raises(ValueError, match="state"):
        notices.send([(alerts[0].alert_id, "closed")])


def test_the_sample_event_parses(notifier: Notifier, receiver: Receiver) -> None:
    event = load_event("sqs_alert_notices")
    (record,) = event["Records"]
    notice = AlertNotice.model_validate_json(record["body"])
    notifier.put(an_alert().model_copy(update={"alert_id": notice.alert_id}))
    context = LocalLambdaContext("AlertNotifierFunction", 512, 60, REGION)
    assert alert_notifier_handler.lambda_handler(event, context) == {"batchItemFailures": []}
    assert len(receiver.accepted()) == 1


def test_the_subject_is_ascii_one_line_and_under_100_characters() -> None:
    alert = an_alert("Ladesäule\nNord " + "x" * 150, connector_id=2)
    subject = notification_subject(alert, "open")
    assert len(subject) <= 99
    assert subject.isascii()
    assert subject.isprintable()
    assert subject.startswith("[chargelog] OPEN boot_loop on Lades?ule Nord xxx")
    assert subject.endswith("...")
    notification = render(alert, "open", suppressed=1)
    assert "\n" not in notification.text
    assert notification.text.endswith(" held back by the hourly limit]")
    assert "[1 earlier notification for Ladesäule Nord xxx" in notification.text
    assert " connector 2 (ocpplab)" in notification.text


def test_the_webhook_payload_escapes_slack_markup_or_is_text_alone() -> None:
    notification = render(an_alert("<!channel> & co"), "open")
    slack = webhook_payload(notification, "slack")
    assert list(slack) == ["text", "transition", "suppressed", "alert"]
    assert "&lt;!channel&gt; &amp; co" in slack["text"]
    assert slack["alert"]["charger_id"] == "<!channel> & co"
    assert webhook_payload(notification, "text") == {"text": notification.text}
    assert slack_escaped("a<b>&c") == "a&lt;b&gt;&amp;c"


@pytest.mark.parametrize(
    ("secret", "url", "format_"),
    [
        (SLACK_URL, SLACK_URL, "slack"),
        (json.dumps({"url": "https://chat.googleapis.com/v1/spaces/x/messages?key=k", "format": "text"}), None, "text"),
        (json.dumps({"url": "http://127.0.0.1:8080/hook"}), "http://127.0.0.1:8080/hook", "slack"),
        ("  http://localhost/hook \n", "http://localhost/hook", "slack"),
        ("http://[::1]:9000/hook", "http://[::1]:9000/hook", "slack"),
    ],
)
def test_a_webhook_secret_names_an_https_or_loopback_url(secret: str, url: str | None, format_: str) -> None:
    target = webhook_target(secret)
    assert target.format == format_
    if url is not None:
        assert target.url == url


@pytest.mark.parametrize(
    "secret",
    [
        f"http://hooks.example.com/{HOOK_TOKEN}",
        f"ftp://127.0.0.1/{HOOK_TOKEN}",
        f"https:///{HOOK_TOKEN}",
        f"not a url {HOOK_TOKEN}",
        json.dumps({"uri": f"https://hooks.example.com/{HOOK_TOKEN}"}),
        json.dumps({"url": f"https://hooks.example.com/{HOOK_TOKEN}", "format": "teams"}),
        "{" + HOOK_TOKEN,
        "",
    ],
)
def test_a_webhook_secret_without_a_usable_url_is_refused_without_saying_it(secret: str) -> None:
    with pytest.raises(WebhookError) as refused:
        webhook_target(secret)
    assert HOOK_TOKEN not in str(refused.value)
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__ or refused.value.__context__ is None


def test_an_unreachable_webhook_fails_without_naming_it() -> None:
    from chargelog.dal.alert_channels import AlertWebhook

    class Fixed:
        def text(self) -> str:
            return f"https://hooks.example.com/services/{HOOK_TOKEN}"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    webhook = AlertWebhook(Fixed(), transport=httpx.MockTransport(refuse))  # type: ignore[arg-type]
    with pytest.raises(WebhookError, match=r"could not be reached \(ConnectError\)") as failure:
        webhook.send(render(an_alert(), "open"))
    assert HOOK_TOKEN not in str(failure.value)
    assert failure.value.__suppress_context__
