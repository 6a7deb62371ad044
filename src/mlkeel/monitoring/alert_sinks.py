"""Where alerts go: the log, a generic webhook (Slack-compatible JSON), SMTP e-mail.

A sink delivers one :class:`Alert` and answers whether it arrived. It never raises: a sink
that is down is logged (logger ``mlkeel.alerts``) and reported, never allowed to break the
monitoring run. Secrets stay out of the log: no SMTP password, and of a webhook URL (Slack's
carry their token in the path) only the scheme and host.

The webhook body::

    {"text": "[mlkeel] alert: breast_cancer: feature mean_radius drifted
              (wasserstein 0.31 &gt; 0.10)",  (one line)
     "alert": {"id": 7, "model": "breast_cancer", "rule": "feature_drift", ...}}

``text`` is escaped as Slack asks (``&``, ``<``, ``>``); ``alert`` is :meth:`Alert.to_dict`.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Protocol

import httpx

from mlkeel.monitoring.alerts import Alert, iso
from mlkeel.settings import AlertsConfig, AlertSink

logger = logging.getLogger("mlkeel.alerts")

TIMEOUT_SECONDS = 10.0


class Sink(Protocol):
    """Delivers alerts somewhere; ``send`` returns whether it arrived and never raises."""

    @property
    def name(self) -> str: ...

    def send(self, alert: Alert) -> bool: ...


def headline(alert: Alert) -> str:
    """The one-line notice: a new alert, one still firing (a repeat), or a resolved one."""
    if alert.status == "resolved":
        return f"[mlkeel] resolved: {alert.message}"
    if alert.notified_at is not None:
        return f"[mlkeel] still firing since {iso(alert.opened_at)}: {alert.message}"
    return f"[mlkeel] alert: {alert.message}"


class LogSink:
    """Logger ``mlkeel.alerts``: WARNING for an open alert, INFO for a resolved one."""

    name = "log"

    def send(self, alert: Alert) -> bool:
        level = logging.INFO if alert.status == "resolved" else logging.WARNING
        logger.log(level, "%s", headline(alert), extra={"alert": alert.to_dict()})
        return True


class WebhookSink:
    """POSTs ``{"text": ..., "alert": {...}}``; retries server errors and network failures
    `retries` times with exponential backoff, gives up at once on other 4xx answers."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = TIMEOUT_SECONDS,
        retries: int = 2,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds

    def payload(self, alert: Alert) -> dict[str, object]:
        return {"text": slack_escape(headline(alert)), "alert": alert.to_dict()}

    def send(self, alert: Alert) -> bool:
        where = redacted(self.url)
        problem = "not attempted"
        try:
            body = self.payload(alert)
            with httpx.Client(timeout=self.timeout) as client:
                for attempt in range(self.retries + 1):
                    if attempt:
                        time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
                    try:
                        response = client.post(self.url, json=body)
                    except httpx.TransportError as exc:
                        problem = f"{exc.__class__.__name__}: {exc}"
                        continue
                    if response.is_success:
                        return True
                    problem = f"HTTP {response.status_code}"
                    if response.status_code < 500 and response.status_code != 429:
                        break
        except Exception as exc:  # a side channel never breaks the monitoring run
            problem = f"{exc.__class__.__name__}: {exc}"
        logger.error("webhook alert %s to %s failed: %s", alert.id, where, problem)
        return False


class EmailSink:
    """One plain-text mail per alert over SMTP; STARTTLS and login when configured."""

    name = "email"

    def __init__(self, config: AlertSink, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.config = config
        self.timeout = timeout

    def message(self, alert: Alert) -> EmailMessage:
        suffix = " resolved" if alert.status == "resolved" else ""
        mail = EmailMessage()
        mail["Subject"] = f"[mlkeel] {alert.model}: {alert.rule} {alert.subject}{suffix}"
        mail["From"] = self.config.sender
        mail["To"] = ", ".join(self.config.to)
        lines = [
            headline(alert),
            "",
            f"model:     {alert.model}",
            f"rule:      {alert.rule}",
            f"subject:   {alert.subject}",
            f"status:    {alert.status}",
            f"opened:    {iso(alert.opened_at)}",
            f"last seen: {iso(alert.last_seen_at)}",
        ]
        if alert.resolved_at is not None:
            lines.append(f"resolved:  {iso(alert.resolved_at)}")
        lines += [f"alert id:  {alert.id}", "", "evidence:", json.dumps(alert.evidence, indent=2)]
        mail.set_content("\n".join(lines) + "\n")
        return mail

    def send(self, alert: Alert) -> bool:
        config = self.config
        try:
            with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=self.timeout) as smtp:
                if config.smtp_tls:
                    smtp.starttls(context=ssl.create_default_context())
                if config.smtp_user:
                    smtp.login(config.smtp_user, config.smtp_password or "")
                smtp.send_message(self.message(alert))
        except Exception as exc:  # a side channel never breaks the monitoring run
            logger.error(
                "email alert %s via %s:%s failed: %s: %s",
                alert.id, config.smtp_host, config.smtp_port, exc.__class__.__name__, exc,
            )  # fmt: skip
            return False
        return True


def build_sinks(config: AlertsConfig) -> list[Sink]:
    """The configured sinks, in order."""
    sinks: list[Sink] = []
    for sink in config.sinks:
        if sink.type == "log":
            sinks.append(LogSink())
        elif sink.type == "webhook" and sink.url:
            sinks.append(WebhookSink(sink.url))
        elif sink.type == "email":
            sinks.append(EmailSink(sink))
    return sinks


def slack_escape(text: str) -> str:
    """Slack reads ``<...>`` as links and ``&`` as an entity; escape all three."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def redacted(url: str) -> str:
    """`url` without path, query or credentials: webhook URLs often carry a token."""
    try:
        parsed = httpx.URL(url)
    except Exception:
        return "<invalid url>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}/…"
