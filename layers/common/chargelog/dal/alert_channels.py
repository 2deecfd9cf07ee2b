"""Where charger alert notifications go: the ChargerAlertTopic (SNS) and an optional Slack-compatible webhook.

The webhook's URL is a secret (whoever has it may post to the channel): it is read from Secrets Manager when a
notification is sent (cached a few minutes), and never logged, traced or put in an exception. That is also why the
POST goes through an httpx transport, not an ``httpx.Client``: X-Ray's httpx patch (Powertools' Tracer applies it)
records each Client request's URL in the trace.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx

from chargelog import aws
from chargelog.dal.secrets import Secret
from chargelog.models.alert_notices import AlertNotification

WEBHOOK_TIMEOUT_SECONDS: Final = 5.0
# Read again after this long: a replaced URL (a rotated Slack webhook) is used within five minutes.
WEBHOOK_SECRET_CACHE_SECONDS: Final = 300
WebhookFormat = Literal["slack", "text"]
WEBHOOK_FORMATS: Final[tuple[str, ...]] = ("slack", "text")
_LOOPBACK_NAMES: Final = frozenset({"localhost"})


class WebhookError(RuntimeError):
    """The webhook refused the notification, failed, or is not configured usably. Its message never holds the URL."""


class SnsAlertTopic:
    """The ChargerAlertTopic: subject, message (text, then the alert's JSON) and attributes to filter on."""

    name = "sns"

    def __init__(self, topic_arn: str) -> None:
        self._topic_arn = topic_arn

    def send(self, notification: AlertNotification) -> None:
        aws.client("sns").publish(
            TopicArn=self._topic_arn,
            Subject=notification.subject,
            Message=notification.message,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in notification.attributes.items()
                if value  # SNS refuses an empty attribute value
            },
        )


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    format: WebhookFormat = "slack"


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def webhook_target(value: str) -> WebhookTarget:
    """The webhook of the secret's value: ``{"url": "https://...", "format"?: "slack"|"text"}`` or the URL alone.
    Only https, or plain http to this machine (a local receiver); the error says why without the URL."""
    text = value.strip()
    format_: Any = "slack"
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise WebhookError("The webhook secret is not valid JSON") from None
        url = document.get("url") if isinstance(document, dict) else None
        format_ = document.get("format", "slack") if isinstance(document, dict) else None
        if format_ not in WEBHOOK_FORMATS:
            raise WebhookError(f"The webhook secret's format is none of {', '.join(WEBHOOK_FORMATS)}")
    else:
        url = text
    if not isinstance(url, str) or not url:
        raise WebhookError('The webhook secret holds no URL (a string, or {"url": "https://..."})')
    try:
        parsed = httpx.URL(url)
    except Exception:  # httpx's messages quote the URL's parts
        raise WebhookError("The webhook secret's URL is not a valid URL") from None
    if parsed.scheme == "https" and parsed.host:
        return WebhookTarget(url, format_)
    if parsed.scheme == "http" and _is_loopback(parsed.host):
        return WebhookTarget(url, format_)
    raise WebhookError("The webhook URL must be https (or plain http to a loopback address)")


def slack_escaped(text: str) -> str:
    """Slack's three control characters escaped, so a charger id or summary holding ``<!channel>`` mentions no one."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_payload(notification: AlertNotification, format_: WebhookFormat) -> dict[str, Any]:
    """``format`` "slack" (Slack, Mattermost, Teams workflows): ``{"text", "transition", "suppressed", "alert"}``;
    "text": ``{"text"}`` alone, for receivers that refuse fields they do not know (Google Chat)."""
    if format_ == "text":
        return {"text": notification.text}
    return {
        "text": slack_escaped(notification.text),
        "transition": notification.attributes["state"],
        "suppressed": notification.suppressed,
        "alert": notification.alert,
    }


class AlertWebhook:
    """POSTs each notification to the URL in a Secrets Manager secret: JSON, 5 s timeout, redirects not followed
    (a 3xx is a failure), any answer but 2xx a failure."""

    name = "webhook"

    def __init__(
        self,
        secret: Secret,
        timeout_seconds: float = WEBHOOK_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._secret = secret
        self._timeout = httpx.Timeout(timeout_seconds)
        self._transport = transport

    def _http(self) -> httpx.BaseTransport:
        if self._transport is None:
            self._transport = httpx.HTTPTransport(retries=0)
        return self._transport

    def send(self, notification: AlertNotification) -> None:
        target = webhook_target(self._secret.text())
        request = httpx.Request(
            "POST",
            target.url,
            json=webhook_payload(notification, target.format),
            headers={"User-Agent": "chargelog-alert-notifier"},
            extensions={"timeout": self._timeout.as_dict()},
        )
        try:
            response = self._http().handle_request(request)
            try:
                body = response.read()
            finally:
                response.close()
        except httpx.HTTPError as error:  # timeouts, refused connections, TLS: their messages may name the host
            raise WebhookError(f"The webhook could not be reached ({type(error).__name__})") from None
        if not 200 <= response.status_code < 300:
            excerpt = body[:200].decode("utf-8", "replace").replace(target.url, "<webhook>").strip()
            raise WebhookError(f"The webhook answered {response.status_code}" + (f": {excerpt}" if excerpt else ""))
