"""Webhook and SMS-gateway delivery over HTTP (httpx, one keep-alive client per sender thread)."""

from __future__ import annotations

import json

import httpx

from alerts.notifiers.base import DeliveryError, Notification
from alerts.notifiers.render import alertmanager_v4, render_template


class WebhookSender:
    """POST the Alertmanager v4 body (webhook) or the rendered template (sms) to the target URL."""

    def __init__(self, *, timeout_s: float, external_url: str) -> None:
        self._client = httpx.Client(timeout=timeout_s, headers={"User-Agent": "safewatch-notifier"})
        self._external_url = external_url

    def close(self) -> None:
        self._client.close()

    def send(self, n: Notification) -> None:
        headers = {"Idempotency-Key": n.idempotency_key}
        if n.channel == "sms":
            body = render_template(n.payload.get("template") or "{summary}", n.payload,
                                   idempotency_key=n.idempotency_key)
            try:
                json.loads(body)
                headers["Content-Type"] = "application/json"
            except ValueError:
                headers["Content-Type"] = "text/plain; charset=utf-8"
            content = body.encode()
        else:
            headers["Content-Type"] = "application/json"
            content = json.dumps(alertmanager_v4(n.payload, external_url=self._external_url),
                                 ensure_ascii=False).encode()
        try:
            response = self._client.post(n.target, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{n.channel} {n.target}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise DeliveryError(f"{n.channel} {n.target} answered HTTP {response.status_code}: "
                                f"{response.text[:200]}")
