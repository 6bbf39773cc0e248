"""A real API process (uvicorn in a thread, on a free port) and a real headless Chromium driven by Playwright.

Each module gets its own database, its own Mosquitto and the real escalation notifier (which opens,
climbs and publishes alerts), so nothing here touches what other tests see. Browser tests skip,
saying why, when Chromium or Playwright is missing. Screenshots go to
test-artifacts/browser/ (gitignored), one per page.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from alerts.notifier_worker import run as run_notifier
from api.app import create_app
from api.auth.users import upsert_user
from safewatch.demo import free_port
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import DemoRegistry, demo_registry, insert_registry
from safewatch.settings import ApiSettings, DbSettings, MqttSettings, NotifierSettings, Settings
from tests.services import create_database, drop_database
from tests.waiting import wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
CHROMIUM = os.environ.get("SAFEWATCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "browser"
PASSWORD = "browser-test-pw"


@pytest.fixture(scope="module")
def sync_playwright_or_skip() -> Any:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set SAFEWATCH_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    return sync_playwright


@dataclass(frozen=True)
class Site:
    url: str
    db_url: str
    registry: DemoRegistry
    users: dict[str, tuple[str, str]]  # username → (role, division)


@pytest.fixture(scope="module")
def private_broker() -> Iterator[str]:
    """A Mosquitto of this module's own: the notifier publishes alerts to it, not to the shared broker."""
    if shutil.which(MOSQUITTO) is None:
        pytest.skip(f"no mosquitto at {MOSQUITTO}: apt-get install -y mosquitto")
    port = free_port()
    proc = subprocess.Popen([MOSQUITTO, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def accepting() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            assert proc.poll() is None, f"mosquitto exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            return False

    wait_until(accepting, bool, timeout=15, what="the private mosquitto to listen")
    yield f"mqtt://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def site_db(sync_playwright_or_skip: Any) -> Iterator[str]:
    """A database of this module's own: the notifier below works on every alert it finds."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def site(sync_playwright_or_skip: Any, site_db: str, private_broker: str) -> Iterator[Site]:
    """The API and dashboard served over HTTP on a free port, the escalation notifier running beside it,
    with a fleet and three people."""
    pg_url = site_db
    tag = uuid.uuid4().hex[:8]
    registry = demo_registry(parse_divisions(shipped_divisions_text()), 309, seed=3, gateway_prefix=f"b{tag}",
                             serial_start=900_000 + int(tag[:4], 16))
    users = {f"region-{tag}": ("region_inspector", "150000"), f"baotou-{tag}": ("league_inspector", "150200"),
             f"rescue-{tag}": ("emergency_responder", "150000")}
    with psycopg.connect(pg_url) as conn:
        insert_registry(conn, registry)
        # Gateways report status: most online, one league's first gateway offline.
        conn.cursor().executemany(
            "INSERT INTO gateway_status (gateway_id, state, since) VALUES (%s, %s, now()) "
            "ON CONFLICT (gateway_id) DO UPDATE SET state = EXCLUDED.state",
            [(g["id"], "offline" if i % 7 == 0 else "online") for i, g in enumerate(registry.gateways)])
        for name, (role, division) in users.items():
            upsert_user(conn, name, PASSWORD, role, division)
    settings = Settings(db=DbSettings(url=pg_url, pool_max=4), mqtt=MqttSettings(url=private_broker),
                        api=ApiSettings(port=free_port(), jwt_secret="browser-test-secret-" + uuid.uuid4().hex),
                        notifier=NotifierSettings(worker_id=f"notifier-{tag}", metrics_port=None, poll_s=0.5))
    stop_notifier, notifier_ready = threading.Event(), threading.Event()
    notifier = threading.Thread(target=run_notifier, args=(settings,), daemon=True, kwargs={
        "stop": stop_notifier, "registry": CollectorRegistry(), "ready": notifier_ready})
    notifier.start()
    assert notifier_ready.wait(20), "the notifier did not start within 20 s"
    app = create_app(settings, registry=CollectorRegistry())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.api.port, log_config=None,
                                           access_log=False, timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, bool, timeout=30, what="the API to start")
    yield Site(f"http://127.0.0.1:{settings.api.port}", pg_url, registry, users)
    server.should_exit = True
    stop_notifier.set()
    thread.join(timeout=20)
    notifier.join(timeout=20)
    assert not thread.is_alive(), "the API server did not stop within 20 s"
    assert not notifier.is_alive(), "the notifier did not stop within 20 s"


@pytest.fixture(scope="module")
def browser(sync_playwright_or_skip: Any, site: Site) -> Iterator[Any]:
    """Headless Chromium; closed before the server stops (so no event stream holds the server open)."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # only this run's screenshots are kept
    with sync_playwright_or_skip() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(width, height, lang)``; any uncaught script error on a page fails the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make(width: int = 1366, height: int = 768, lang: str = "zh") -> Any:
        ctx = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
        ctx.add_init_script(f"localStorage.setItem('sw_lang', '{lang}')")
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    assert not errors, f"the pages logged errors: {errors}"


def log_in(page: Any, site: Site, username: str) -> None:
    page.goto(site.url + "/")
    page.fill("#login input[name=username]", username)
    page.fill("#login input[name=password]", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#page-overview[data-ready='1']")


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
