"""E-mail delivery over SMTP (stdlib smtplib; one connection per message, as mail volume is low)."""

from __future__ import annotations

import smtplib

from alerts.notifiers.base import DeliveryError, Notification
from alerts.notifiers.render import email_message
from safewatch.settings import NotifierSettings


class EmailSender:
    def __init__(self, settings: NotifierSettings) -> None:
        self._s = settings

    def close(self) -> None:
        """Nothing held between messages."""

    def send(self, n: Notification) -> None:
        s = self._s
        msg = email_message(n.payload, to=n.target, sender=s.smtp_from, idempotency_key=n.idempotency_key,
                            external_url=s.external_url)
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password.get_secret_value() if s.smtp_password else "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"e-mail to {n.target} via {s.smtp_host}:{s.smtp_port}: {exc}; "
                                "check SAFEWATCH_NOTIFIER__SMTP_* settings") from exc
