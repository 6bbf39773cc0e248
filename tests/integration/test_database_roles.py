"""Least privilege in the database (safewatch/schema/roles.py), on a real PostgreSQL: plain storage on the shared
test server, TimescaleDB storage on a private cluster that preloads it (skipped where it is not installed).

- Each process does its job through its real code as its own login role: the ingest stores readings, dead
  letters and statuses and keeps plain storage's partitions and rollups; the alert worker raises an alert;
  the notifier delivers it; the API lists, acknowledges and re-processes; Grafana's dashboard queries run.
- Each role is refused what it must not do: read people's password hashes, write what another process owns,
  create, alter, drop or truncate a table, and Grafana anything but reading its dashboards' tables.
- The grants cover every table, and a table a later migration adds gets its grants when it is migrated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.worker import run as run_alerts
from api.app import create_app
from api.auth.users import token_for, upsert_user
from bench.ingest.instances import PG_BIN, PrivatePostgres
from ingest.rollups import drop_old_partitions, refresh_rollups
from ingest.worker import run as run_ingest
from ingest.writer import ensure_partitions
from safewatch.contract import Event, Kind, build_topic, encode_event
from safewatch.db import one_row
from safewatch.mqtt import connect_publisher
from safewatch.registry.divisions import load_divisions
from safewatch.schema import migrate as migrate_module
from safewatch.schema.layout import READING_TABLES
from safewatch.schema.migrate import Migration, migrate
from safewatch.schema.roles import (
    ACCESS,
    DB_PASSWORD_ENV_PREFIX,
    PROCESSES,
    RW,
    group_role,
    login_role,
    provision_login_roles,
    unclassified_relations,
)
from safewatch.settings import ApiSettings, DbSettings, NotifierSettings, Settings
from tests.integration.dashboard.test_monitoring_config import dashboard_queries, grafana_to_sql
from tests.integration.notify.conftest import Notifier, Sink, add_contact, make_site, query, set_policy
from tests.services import TEST_DB_URL, TIMESCALE_AVAILABLE, create_database, drop_database, process_url, role_password
from tests.waiting import wait_until

SECRET = "test-secret-for-the-database-roles"
DENIED = psycopg.errors.InsufficientPrivilege


@dataclass(frozen=True)
class RolesDb:
    """A migrated database: its owner's URL, and each process's (its login role's)."""

    owner: str
    storage: str
    process_urls: dict[str, str]

    def url(self, process: str) -> str:
        return self.process_urls[process]


def _timescale_installed() -> bool:
    with psycopg.connect(TEST_DB_URL) as conn:
        return conn.execute(TIMESCALE_AVAILABLE).fetchone() is not None and (PG_BIN / "initdb").exists()


@pytest.fixture(scope="module", params=["plain", pytest.param("timescale", marks=pytest.mark.skipif(
    not _timescale_installed(), reason="TimescaleDB is not installed here (a private cluster preloads it)"))])
def roles_db(request: pytest.FixtureRequest) -> Iterator[RolesDb]:
    """Plain storage on the shared test server; TimescaleDB storage on a private cluster that preloads it
    (the shared server does not), with the login roles made there as production's setup does."""
    if request.param == "plain":
        url = create_database(storage="plain")
        yield RolesDb(url, "plain", {p: process_url(url, p) for p in PROCESSES})
        drop_database(url)
        return
    with PrivatePostgres(extra="shared_preload_libraries = 'timescaledb'\ntimescaledb.telemetry_level = off") as pg:
        url = pg.create_database("roles_timescale")
        assert migrate(url, storage="timescale") == "timescale"
        with psycopg.connect(url, autocommit=True) as conn:
            load_divisions(conn)
            provision_login_roles(conn, {p: role_password(p) for p in PROCESSES})
        yield RolesDb(url, "timescale", {p: url.replace("postgres@", f"{login_role(p)}:{role_password(p)}@", 1)
                                         for p in PROCESSES})


def _as(settings: Settings, db: RolesDb, process: str) -> Settings:
    return settings.model_copy(update={"db": DbSettings(url=db.url(process))})


def _publish(settings: Settings, uid: str, messages: list[tuple[str, bytes]]) -> None:
    client = connect_publisher(settings.mqtt, client_id=f"roles-{uid}")
    try:
        for info in [client.publish(topic, payload, qos=1) for topic, payload in messages]:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_each_process_does_its_job_as_its_own_role(roles_db, settings, running, uid):
    owner = roles_db.owner
    base = settings.model_copy(update={
        "db": DbSettings(url=owner),
        "notifier": NotifierSettings(worker_id=f"notifier-{uid}", metrics_port=None, poll_s=0.5, retry_base_s=0.2,
                                     retry_max_s=1.0, group_interval_s=0, claim_s=10, webhook_timeout_s=2)})
    sink = Sink()
    try:
        set_policy(owner, "critical", open_levels=["banner"], max_level="banner", banner_ack_s=300, league_ack_s=300)
        site = make_site(owner, "150921", n=2)
        eq = site.equipment[0]
        add_contact(owner, "150921", f"duty {uid}", [("webhook", sink.url("/banner"), None)], kind="emergency_team",
                    categories=["3000"])
        running(run_ingest, _as(base, roles_db, "ingest"))
        running(run_alerts, _as(base, roles_db, "alerts"))
        notifier = Notifier(_as(base, roles_db, "notifier")).start()

        now = int(time.time() * 1000)
        telemetry = build_topic(eq.league_code, site.gateway_id, Kind.TELEMETRY)
        _publish(base, uid, [
            (telemetry, orjson.dumps({"ts": now - 1000, "readings": [
                {"equipment": e.code, "values": {"speed": 1.0, "floor": 3}} for e in site.equipment]})),
            (telemetry, orjson.dumps({"ts": now, "readings": [{"equipment": "999999999999999999",
                                                               "values": {"speed": 1.0}}]})),
            (build_topic(eq.league_code, site.gateway_id, Kind.STATUS), orjson.dumps({"state": "online", "ts": now})),
            (build_topic(eq.league_code, site.gateway_id, Kind.EVENT),
             encode_event(Event(eq.code, "passenger_trapped", now))),
        ])
        # The ingest (readings, a dead letter, a status) and the alert worker and the notifier (the webhook).
        wait_until(lambda: query(owner, "SELECT count(*) FROM readings r JOIN equipment e ON e.id = r.equipment_id "
                                        "WHERE e.gateway_id = %s", site.gateway_id)[0][0],
                   lambda n: n == 4, what="the readings stored by the ingest role")
        wait_until(lambda: query(owner, "SELECT count(*) FROM dead_letters WHERE gateway_id = %s",
                                 site.gateway_id)[0][0], lambda n: n == 1, what="the dead letter")
        wait_until(lambda: query(owner, "SELECT state FROM gateway_status WHERE gateway_id = %s", site.gateway_id),
                   lambda rows: rows == [("online",)], what="the gateway's status")
        got = sink.wait(lambda rs: any(r.path == "/banner" for r in rs), timeout=20, what="the webhook")
        assert got[0].json()["alerts"][0]["labels"]["equipment_code"] == eq.code
        notifier.stop()

        # The ingest's upkeep on plain storage: partitions, rollups, retention (owner functions it may run).
        with psycopg.connect(roles_db.url("ingest")) as conn:
            ensure_partitions(conn)
            refreshed = refresh_rollups(conn, now=_far_future())
            assert refreshed >= 1 if roles_db.storage == "plain" else refreshed == 0  # TimescaleDB: its policies
            drop_old_partitions(conn)
        assert query(owner, "SELECT count(*) FROM readings_1m WHERE equipment_id = %s", eq.id)[0][0] == 2

        # The API: the alert listed and acknowledged, the dead letter re-processed, the registry edited.
        with psycopg.connect(owner) as conn:
            admin = token_for(conn, upsert_user(conn, f"admin-{uid}", "a-long-test-password", "administrator",
                                                "150000"), secret=SECRET, ttl_s=3600)
        api_settings = _as(base, roles_db, "api").model_copy(update={"api": ApiSettings(jwt_secret=SECRET)})
        headers = {"Authorization": f"Bearer {admin}"}
        with TestClient(create_app(api_settings, registry=CollectorRegistry())) as api:
            alerts = api.get("/api/v1/alerts", headers=headers, params={"equipment": eq.code})
            assert alerts.status_code == 200, alerts.text
            (alert,) = [a for a in alerts.json()["items"] if a["equipment_code"] == eq.code]
            acked = api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=headers, json={"reason": "on it"})
            assert acked.status_code == 200, acked.text
            comment = api.post(f"/api/v1/alerts/{alert['id']}/comments", headers=headers, json={"text": "arrived"})
            assert comment.status_code == 200, comment.text
            redo = api.post("/api/v1/deadletters/reprocess", headers=headers, json={"gateway": site.gateway_id})
            assert redo.status_code == 200 and redo.json()["outcomes"][0]["result"] == "failed_again", redo.text
            gateway = api.post("/api/v1/gateways", headers=headers, json={"id": f"gw-{uid}", "league_code": "150900"})
            assert gateway.status_code == 201, gateway.text
            renamed = api.patch(f"/api/v1/gateways/gw-{uid}", headers=headers, json={"name": "北门"})
            assert renamed.status_code == 200, renamed.text
            made = api.post("/api/v1/users", headers=headers, json={
                "username": f"clerk-{uid}", "password": "another-long-password", "role": "registry_clerk",
                "division_code": "150921"})
            assert made.status_code == 201, made.text
            chart = api.get(f"/api/v1/telemetry/{eq.code}", headers=headers, params={"metric": "speed"})
            assert chart.status_code == 200, chart.text
            assert api.get("/api/v1/dashboard/overview", headers=headers).status_code == 200
            assert api.get("/api/v1/kpis", headers=headers).status_code == 200
        assert query(owner, "SELECT state FROM alerts WHERE id = %s", alert["id"]) == [("active_ack",)]
    finally:
        sink.close()


def _far_future() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=5)


def test_grafana_runs_its_dashboards_queries_and_nothing_else(roles_db):
    with psycopg.connect(roles_db.owner) as conn:
        code, metric = conn.execute("SELECT e.code, m.key FROM equipment e JOIN metrics m ON m.category = e.category "
                                    "ORDER BY e.id, m.id LIMIT 1").fetchone() or ("3110150120200000000", "speed")
    with psycopg.connect(roles_db.url("grafana"), autocommit=True) as conn:
        for title, query_text in dashboard_queries():
            try:
                conn.execute(grafana_to_sql(query_text, league="150000", equipment=code, metric=metric)).fetchall()
            except psycopg.Error as exc:
                pytest.fail(f"panel {title!r} fails as the grafana role: {exc}")
        for table in ACCESS["grafana"]:
            for statement in (f"INSERT INTO {table} DEFAULT VALUES", f"UPDATE {table} SET {_a_column(conn, table)} = "
                              f"{_a_column(conn, table)}", f"DELETE FROM {table}", f"TRUNCATE {table}"):
                # TimescaleDB's readings_1m is a view over continuous aggregates: not writable by anyone
                with pytest.raises((DENIED, psycopg.errors.ObjectNotInPrerequisiteState,
                                    psycopg.errors.WrongObjectType)):
                    conn.execute(statement)
        for table in ("users", "contacts", "contact_channels", "dead_letters", "alert_notes", "readings"):
            with pytest.raises(DENIED):
                conn.execute(f"SELECT * FROM {table} LIMIT 1")
        with pytest.raises(DENIED):
            conn.execute("CREATE TEMP TABLE scratch (i int)")


def _a_column(conn: psycopg.Connection, table: str) -> str:
    return one_row(conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                        "AND attidentity = '' AND attgenerated = '' AND NOT attisdropped ORDER BY attnum LIMIT 1",
                        (table,)))[0]


# What each role must not do (statements that would succeed as the owner).
REFUSED = {
    "ingest": ["SELECT password_hash FROM users", "SELECT * FROM contact_channels", "UPDATE alerts SET message = ''",
               "INSERT INTO alert_transitions (alert_id, to_state, actor) VALUES (1, 'normal', 'x')",
               "DELETE FROM dead_letters", "DELETE FROM elevator_readings"],
    "alerts": ["SELECT password_hash FROM users", "SELECT * FROM contacts", "DELETE FROM alerts",
               "UPDATE alert_transitions SET actor = 'x'", "INSERT INTO elevator_readings (time, equipment_id) "
               "VALUES (now(), 1)", "UPDATE outbox SET attempts = 0"],
    "notifier": ["SELECT password_hash FROM users", "INSERT INTO elevator_readings (time, equipment_id) "
                 "VALUES (now(), 1)", "DELETE FROM outbox", "UPDATE alert_engine_state SET state = NULL",
                 "UPDATE equipment SET address = ''"],
    "api": ["UPDATE alert_engine_state SET state = NULL", "DELETE FROM alert_transitions",
            "UPDATE alert_transitions SET actor = 'x'", "UPDATE registry_audit SET actor = 'x'",
            "DELETE FROM equipment_audit", "DELETE FROM users", "DELETE FROM alerts", "DELETE FROM elevator_readings",
            "UPDATE outbox SET attempts = 0", "SELECT safewatch_drop_old_partitions('1 day')"],
}
# Nobody but the owner changes the schema.
SCHEMA_CHANGES = ["CREATE TABLE public.intruder (i int)", "CREATE VIEW public.intruder AS SELECT 1",
                  "CREATE FUNCTION public.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
                  "CREATE SCHEMA intruder", "DROP TABLE alerts", "DROP VIEW readings", "TRUNCATE alerts",
                  "ALTER TABLE alerts ADD COLUMN intruder int", "CREATE INDEX intruder ON alerts (id)",
                  "ALTER TABLE users OWNER TO CURRENT_USER", "ALTER ROLE CURRENT_USER SUPERUSER",
                  "CREATE ROLE intruder"]


@pytest.mark.parametrize("process", PROCESSES)
def test_no_role_changes_the_schema_or_another_process_data(roles_db, process):
    with psycopg.connect(roles_db.url(process), autocommit=True) as conn:
        for statement in [*REFUSED.get(process, []), *SCHEMA_CHANGES]:
            with pytest.raises((DENIED, psycopg.errors.WrongObjectType)):
                conn.execute(statement)
                pytest.fail(f"{process} may {statement!r}")
        assert not one_row(conn.execute("SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles "
                                "WHERE rolname = current_user"))[0]


def test_every_table_has_its_grants_and_none_is_left_to_chance(roles_db):
    with psycopg.connect(roles_db.owner) as conn:
        assert unclassified_relations(conn) == []
        present = {name for (name,) in conn.execute("SELECT relname FROM pg_class WHERE relnamespace = "
                                                    "'public'::regnamespace")}
    timescale_only = {t.minute for t in READING_TABLES} | {t.hour for t in READING_TABLES}
    plain_only = {"rollup_dirty"}  # TimescaleDB's continuous aggregates track what changed themselves
    named = {r for relations in ACCESS.values() for r in relations}
    other = timescale_only if roles_db.storage == "plain" else plain_only
    assert named - present <= other, "ACCESS names a relation no storage has"


def test_a_table_a_later_migration_adds_is_granted_once_migrated(monkeypatch):
    url = create_database(storage="plain")
    try:
        later = Migration(999, "later_table", None, "CREATE TABLE later_things (id serial PRIMARY KEY, note text);"
                                                    "DROP TABLE alert_notes; CREATE TABLE alert_notes "
                                                    "(id bigserial PRIMARY KEY, alert_id bigint, author text, "
                                                    "body text)")
        shipped = migrate_module.available_migrations()
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: [*shipped, later])
        monkeypatch.setitem(ACCESS["api"], "later_things", RW)
        migrate(url)
        with psycopg.connect(url) as conn:
            assert unclassified_relations(conn) == []
        with psycopg.connect(process_url(url, "api"), autocommit=True) as conn:
            # the new table and its sequence, and a table the migration dropped and made again
            conn.execute("INSERT INTO later_things (note) VALUES ('covered')")
            conn.execute("INSERT INTO alert_notes (alert_id, author, body) VALUES (1, 'x', 'y')")
        with psycopg.connect(process_url(url, "grafana"), autocommit=True) as conn, pytest.raises(DENIED):
            conn.execute("SELECT * FROM later_things")
        monkeypatch.delitem(ACCESS["api"], "later_things")
        with psycopg.connect(url) as conn:
            assert unclassified_relations(conn) == ["later_things"]  # what the test above would catch
        migrate(url)  # re-granted from ACCESS: a grant taken out of it is taken from the database too
        with psycopg.connect(process_url(url, "api"), autocommit=True) as conn, pytest.raises(DENIED):
            conn.execute("INSERT INTO later_things (note) VALUES ('revoked')")
    finally:
        drop_database(url)


def test_group_roles_are_nologin_and_login_roles_members_of_their_group(roles_db):
    with psycopg.connect(roles_db.owner) as conn:
        for process in PROCESSES:
            (can_login,) = one_row(conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                                        (group_role(process),)))
            assert not can_login
            groups = [r for (r,) in conn.execute(
                "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s", (f"safewatch_{process}_login",))]
            assert groups == [group_role(process)]


def _cli(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SAFEWATCH_")}
    return subprocess.run([sys.executable, "-m", "safewatch.cli", *args], capture_output=True, text=True,
                          check=False, env={**keep, "SAFEWATCH_DB__URL": url, **env}, timeout=120)


def test_migrate_makes_the_login_roles_as_compose_runs_it(roles_db, tmp_path):
    passwords = {DB_PASSWORD_ENV_PREFIX + p.upper(): role_password(p) for p in PROCESSES}
    but_grafana = {k: v for k, v in passwords.items() if "GRAFANA" not in k}
    short = _cli(roles_db.owner, "migrate", "--login-roles", **but_grafana)
    assert short.returncode == 2 and DB_PASSWORD_ENV_PREFIX + "GRAFANA" in short.stderr, short.stderr
    done = _cli(roles_db.owner, "migrate", "--login-roles", **passwords)
    assert done.returncode == 0, done.stderr
    assert all(login_role(p) in done.stdout for p in PROCESSES), done.stdout
    env_file = tmp_path / ".env"
    env_file.write_text(f"# as scripts/make-env writes it\nDB_PASSWORD_API={role_password('api')}\n", encoding="utf-8")
    done = _cli(roles_db.owner, "db-roles", "--env-file", str(env_file))
    assert done.returncode == 0 and login_role("api") in done.stdout and login_role("ingest") not in done.stdout
    with psycopg.connect(roles_db.url("api")) as conn:
        assert one_row(conn.execute("SELECT current_user"))[0] == login_role("api")


@pytest.mark.skipif(not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None,
                    reason=f"needs PostgreSQL server binaries at {PG_BIN} to run a private instance")
def test_login_roles_authenticate_with_their_password_on_a_server_that_asks_for_one():
    """On a private cluster where every role but the owner must give a SCRAM password (the shared test server
    trusts everyone): the verifier provision_login_roles computes is the one the server checks, and a new
    password replaces the old at once (rotation)."""
    with PrivatePostgres() as pg:
        (pg.data / "pg_hba.conf").write_text("host all postgres 127.0.0.1/32 trust\n"
                                              "host all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8")
        pg.restart()
        url = pg.create_database("roles_auth")
        migrate(url, storage="plain")

        def login(process: str, password: str) -> str:
            return url.replace("postgres@", f"{login_role(process)}:{password}@", 1)

        with psycopg.connect(url, autocommit=True) as owner:
            provision_login_roles(owner, {"ingest": "first-password-of-ingest", "grafana": "grafana-password-0"})
        with psycopg.connect(login("ingest", "first-password-of-ingest")) as conn:
            assert one_row(conn.execute("SELECT count(*) FROM equipment"))[0] == 0
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(login("ingest", "a-wrong-password"))
        with psycopg.connect(url, autocommit=True) as owner:
            provision_login_roles(owner, {"ingest": "second-password-of-ingest"})
            stored = one_row(owner.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                                   (login_role("ingest"),)))[0]
        assert stored.startswith("SCRAM-SHA-256$4096:") and "second-password" not in stored
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(login("ingest", "first-password-of-ingest"))
        with psycopg.connect(login("ingest", "second-password-of-ingest")) as conn:
            assert one_row(conn.execute("SELECT current_user"))[0] == login_role("ingest")
        with psycopg.connect(login("grafana", "grafana-password-0")) as conn, pytest.raises(DENIED):
            conn.execute("SELECT * FROM users")


@pytest.mark.skipif(not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None,
                    reason=f"needs PostgreSQL server binaries at {PG_BIN} to run a private instance")
def test_a_developer_without_createrole_still_migrates_and_is_told_why_there_are_no_roles(caplog):
    with PrivatePostgres() as pg:
        with psycopg.connect(pg.url, autocommit=True) as admin:
            admin.execute("CREATE ROLE developer LOGIN CREATEDB")
            admin.execute("CREATE DATABASE own_laptop OWNER developer")
        url = pg.url.replace("postgres@", "developer@").rsplit("/", 1)[0] + "/own_laptop"
        migrate(url, storage="plain")
        with psycopg.connect(url) as conn:
            assert one_row(conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'safewatch%'"))[0] == 0
            assert one_row(conn.execute("SELECT count(*) FROM schema_migrations"))[0] > 20
    assert any("process roles not granted" in r.getMessage() and "CREATEROLE" in r.getMessage()
               for r in caplog.records)
