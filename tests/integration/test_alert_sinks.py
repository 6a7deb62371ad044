"""Each alert sink against a real receiver on loopback: an HTTP server, an SMTP server."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mlkeel.monitoring.alert_sinks import EmailSink, LogSink, WebhookSink, build_sinks
from mlkeel.monitoring.alerts import Alert
from mlkeel.settings import AlertsConfig, AlertSink
from support import free_port

SECRET = "s3cret-Pa55"
ALERT = Alert(
    id=7,
    model="breast_cancer",
    rule="feature_drift",
    subject="mean_radius",
    status="open",
    message="breast_cancer: feature mean_radius drifted (wasserstein 0.31 > 0.10)",
    evidence={"feature": "mean_radius", "score": 0.31, "threshold": 0.1, "p_value": None},
    opened_at=1_767_312_000.0,  # 2026-01-02T00:00:00Z
    last_seen_at=1_767_312_000.0,
    notified_at=None,
    resolved_at=None,
)
RESOLVED = replace(
    ALERT, status="resolved", notified_at=1_767_312_000.0, resolved_at=1_767_398_400.0
)


@dataclass
class Receiver:
    url: str
    status: int = 200
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook endpoint: records each JSON body, answers with ``receiver.status``."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            state.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/token"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.messages.append(mail)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        if data.login == b"alerts" and data.password == SECRET.encode():
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on loopback that accepts mail and one login."""
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box.authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def email_config(port: int, **fields: Any) -> AlertSink:
    return AlertSink(
        type="email", smtp_host="127.0.0.1", smtp_port=port, to=["ops@example.com"], **fields
    )


def test_webhook_posts_slack_text_and_the_full_alert(receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url)

    assert sink.send(ALERT) is True

    (body,) = receiver.bodies
    assert body["text"] == (
        "[mlkeel] alert: breast_cancer: feature mean_radius drifted (wasserstein 0.31 &gt; 0.10)"
    )
    assert body["alert"] == {
        "id": 7,
        "model": "breast_cancer",
        "rule": "feature_drift",
        "subject": "mean_radius",
        "status": "open",
        "message": ALERT.message,
        "evidence": ALERT.evidence,
        "opened_at": "2026-01-02T00:00:00+00:00",
        "last_seen_at": "2026-01-02T00:00:00+00:00",
        "notified_at": None,
        "resolved_at": None,
    }


def test_webhook_says_resolved_and_still_firing(receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url)

    assert sink.send(RESOLVED)
    assert sink.send(replace(ALERT, notified_at=ALERT.opened_at))

    assert receiver.bodies[0]["text"].startswith("[mlkeel] resolved: breast_cancer: feature")
    assert receiver.bodies[0]["alert"]["resolved_at"] == "2026-01-03T00:00:00+00:00"
    assert receiver.bodies[1]["text"].startswith(
        "[mlkeel] still firing since 2026-01-02T00:00:00+00:00: breast_cancer:"
    )


def test_webhook_retries_a_server_error_then_reports_failure(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 500
    sink = WebhookSink(receiver.url, backoff_seconds=0.01)

    with caplog.at_level(logging.DEBUG, logger="mlkeel.alerts"):
        assert sink.send(ALERT) is False

    assert len(receiver.bodies) == 3  # one attempt and two retries
    ours = [r.getMessage() for r in caplog.records if r.name == "mlkeel.alerts"]
    assert len(ours) == 1
    assert "HTTP 500" in ours[0]
    assert "token" not in ours[0]  # the URL's secret path stays out of our log


def test_webhook_does_not_retry_a_client_error(receiver: Receiver) -> None:
    receiver.status = 404
    assert WebhookSink(receiver.url, backoff_seconds=0.01).send(ALERT) is False
    assert len(receiver.bodies) == 1


def test_webhook_to_a_receiver_that_is_down_fails_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", backoff_seconds=0.01)

    assert sink.send(ALERT) is False
    assert "ConnectError" in caplog.text


def test_webhook_with_a_nonsense_url_fails_without_raising() -> None:
    assert WebhookSink("not a url", backoff_seconds=0.01).send(ALERT) is False


def test_email_arrives_with_subject_and_evidence(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox

    assert EmailSink(email_config(port, sender="mlkeel@example.com")).send(ALERT) is True

    (mail,) = box.messages
    assert mail["Subject"] == "[mlkeel] breast_cancer: feature_drift mean_radius"
    assert mail["From"] == "mlkeel@example.com"
    assert mail["To"] == "ops@example.com"
    body = mail.get_content()
    assert ALERT.message in body
    assert "status:    open" in body
    assert '"score": 0.31' in body


def test_email_of_a_resolved_alert_says_so(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox

    assert EmailSink(email_config(port)).send(RESOLVED) is True

    (mail,) = box.messages
    assert mail["Subject"] == "[mlkeel] breast_cancer: feature_drift mean_radius resolved"
    assert "resolved:  2026-01-03T00:00:00+00:00" in mail.get_content()


def test_email_logs_in_and_never_logs_the_password(
    mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    box, port = mailbox
    good = EmailSink(email_config(port, smtp_user="alerts", smtp_password=SECRET))
    bad = EmailSink(email_config(port, smtp_user="alerts", smtp_password=SECRET + "-wrong"))

    with caplog.at_level(logging.DEBUG):
        assert good.send(ALERT) is True
        assert bad.send(ALERT) is False

    assert box.logins == ["alerts"]
    assert len(box.messages) == 1
    assert "SMTPAuthenticationError" in caplog.text
    assert SECRET not in caplog.text


def test_email_starttls_to_a_server_without_it_fails_without_raising(
    mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    box, port = mailbox

    assert EmailSink(email_config(port, smtp_tls=True)).send(ALERT) is False

    assert box.messages == []
    assert "STARTTLS" in caplog.text


def test_email_to_a_server_that_is_down_fails_without_raising() -> None:
    assert EmailSink(email_config(free_port()), timeout=2).send(ALERT) is False


def test_log_sink_warns_on_open_and_informs_on_resolved(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mlkeel.alerts"):
        assert LogSink().send(ALERT)
        assert LogSink().send(RESOLVED)

    opened, resolved = caplog.records
    assert (opened.name, opened.levelno) == ("mlkeel.alerts", logging.WARNING)
    assert opened.getMessage() == f"[mlkeel] alert: {ALERT.message}"
    assert (resolved.levelno, resolved.getMessage()) == (
        logging.INFO, f"[mlkeel] resolved: {ALERT.message}",
    )  # fmt: skip


def test_build_sinks_follows_the_config() -> None:
    config = AlertsConfig(
        sinks=[
            AlertSink(type="log"),
            AlertSink(type="webhook", url="https://hooks.example.com/x"),
            AlertSink(type="email", to=["ops@example.com"]),
        ]
    )

    sinks = build_sinks(config)

    assert [type(s) for s in sinks] == [LogSink, WebhookSink, EmailSink]
    assert [s.name for s in sinks] == ["log", "webhook", "email"]
    assert [type(s) for s in build_sinks(AlertsConfig())] == [LogSink]
