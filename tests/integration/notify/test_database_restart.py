"""Timers live in the database: a PostgreSQL restart while a climb is pending loses nothing and fires
nothing twice. Uses a PRIVATE PostgreSQL (the shared one is never restarted)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import psycopg
import pytest

from bench.ingest.instances import PG_BIN, PrivatePostgres
from safewatch.registry.divisions import load_divisions
from safewatch.schema.migrate import migrate
from safewatch.settings import DbSettings, Settings
from tests.integration.notify.conftest import add_contact, make_site, open_alert, query, set_policy

pytestmark = pytest.mark.skipif(not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None,
                                reason=f"needs PostgreSQL server binaries at {PG_BIN} to run a private instance")


@pytest.fixture(scope="module")
def private_pg() -> Iterator[tuple[PrivatePostgres, str]]:
    with PrivatePostgres() as pg:
        url = pg.create_database("notify_restart")
        migrate(url, storage="plain")
        with psycopg.connect(url) as conn:
            load_divisions(conn)
        yield pg, url


def test_a_pending_climb_survives_a_database_restart(private_pg, nsettings, sink, notifier):
    pg, url = private_pg
    settings = nsettings.model_copy(update={"db": DbSettings(url=url)})
    assert isinstance(settings, Settings)
    set_policy(url, "major", open_levels=["banner"], max_level="league", banner_ack_s=3, league_ack_s=60)
    site = make_site(url, "150203")
    add_contact(url, "150203", "banner duty", [("webhook", sink.url("/banner"), None)])
    add_contact(url, "150200", "league duty", [("webhook", sink.url("/league"), None)])
    notifier(settings).start()
    alert_id = open_alert(url, site.equipment[0], severity="major")
    sink.wait(lambda rs: any(r.path == "/banner" for r in rs), what="banner notification")
    pg.restart()  # the climb is due in under 3 s: it falls during or just after the restart
    got = sink.wait(lambda rs: any(r.path == "/league" for r in rs), timeout=30, what="league after the restart")
    assert [int(a["fingerprint"], 16) for r in got if r.path == "/league" for a in r.json()["alerts"]] == [alert_id]
    assert query(url, "SELECT kind, fired_at IS NOT NULL FROM escalation_timers WHERE alert_id = %s ORDER BY id",
                 alert_id) == [("open", True), ("climb", True)]
    assert query(url, "SELECT level FROM alerts WHERE id = %s", alert_id) == [("league",)]
