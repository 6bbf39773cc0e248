"""The dashboards' notification stream over a real HTTP server: scoped, live, and resumable."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import httpx
import orjson
import psycopg
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from api.app import create_app
from api.auth.users import token_for, upsert_user
from safewatch.demo import free_port
from safewatch.settings import ApiSettings, DbSettings, Settings
from tests.integration.notify.conftest import make_site, open_alert, query
from tests.services import process_url
from tests.waiting import wait_until

SECRET = "test-secret-for-the-notification-stream"


@pytest.fixture(scope="module")
def api(notify_url: str) -> Iterator[str]:
    port = free_port()
    settings = Settings(db=DbSettings(url=process_url(notify_url, "api")),  # the API's own role, as in production
                        api=ApiSettings(jwt_secret=SECRET))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, registry=CollectorRegistry()), host="127.0.0.1",
                                           port=port, log_config=None, access_log=False,
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, bool, timeout=20, what="API server started")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _token(url: str, role: str, division: str) -> str:
    with psycopg.connect(url) as conn:
        user_id = upsert_user(conn, f"{role}-{division}", "a-long-test-password", role, division)
        return token_for(conn, user_id, secret=SECRET, ttl_s=3600)


class Listener:
    """Reads the stream in a thread, putting (event, data) pairs on ``events``; ``close()`` hangs up."""

    def __init__(self, base: str, token: str, **headers: str) -> None:
        self.events: queue.Queue = queue.Queue()
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        self._request = self._client.build_request("GET", f"{base}/api/v1/stream/notifications",
                                                   params={"access_token": token}, headers=headers)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            r = self._client.send(self._request, stream=True)
            assert r.status_code == 200, r.read()
            kind, data = None, None
            for line in r.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data = line.split(":", 1)[1].strip()
                elif line == "" and kind is not None:
                    self.events.put((kind, orjson.loads(data) if data else None))
                    kind, data = None, None
        except httpx.HTTPError:
            pass  # closed by the test

    def next(self, kind: str) -> dict:
        while True:
            got_kind, data = self.events.get(timeout=15)
            if got_kind == kind:
                return data

    def close(self) -> None:
        self._client.close()


def test_notifications_stream_is_scoped_live_and_resumable(api, notify_url, notifier):
    token = _token(notify_url, "league_inspector", "150700")
    live = Listener(api, token)
    assert live.next("ready") == {"last_id": None}
    notifier().start()

    outside = open_alert(notify_url, make_site(notify_url, "150102").equipment[0], severity="minor")
    wait_until(lambda: query(notify_url, "SELECT count(*) FROM outbox WHERE channel = 'sse' AND alert_id = %s "
                                         "AND delivered_at IS NOT NULL", outside)[0][0], lambda n: n == 1,
               what="the out-of-scope notification announced")
    inside = open_alert(notify_url, make_site(notify_url, "150781").equipment[0], severity="minor")
    first = live.next("notification")
    second = live.next("notification")
    # 满洲里 is told, and so is its league 呼伦贝尔, both inside a 呼伦贝尔 inspector's jurisdiction;
    # the 呼和浩特 alert is not in it.
    assert {first["division_code"], second["division_code"]} == {"150781", "150700"}
    assert [a["id"] for a in first["alerts"]] == [inside] and first["status"] == "firing"
    assert live.events.empty()
    live.close()

    # A dashboard that was away resumes from the last id it saw and misses nothing.
    resumed = Listener(api, token, **{"Last-Event-ID": "0"})
    replayed = [resumed.next("notification"), resumed.next("notification")]
    assert sorted(e["id"] for e in replayed) == sorted([first["id"], second["id"]])
    assert resumed.next("ready") == {"last_id": max(first["id"], second["id"])}
    resumed.close()


def test_the_stream_needs_a_token(api):
    r = httpx.get(f"{api}/api/v1/stream/notifications", timeout=5)
    assert r.status_code == 401
