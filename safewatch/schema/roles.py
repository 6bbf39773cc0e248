"""Least privilege in the database: one role per process, holding only the grants that process needs.

- Group roles (NOLOGIN) ``safewatch_ingest``, ``safewatch_alerts``, ``safewatch_notifier``, ``safewatch_api``
  and ``safewatch_grafana`` carry the grants. `apply_grants` makes them and (re)grants ``ACCESS`` below; the
  migration runner calls it after every migration run, so a table a later migration makes, or drops and
  makes again, gets its grants at once. It is idempotent: everything is revoked and granted again in one
  transaction, so a grant removed from ``ACCESS`` is removed from the database too.
- Login roles (``safewatch_ingest_login`` …) are members of their group, with a password: made by
  `provision_login_roles`, which `safewatch db-roles`, `safewatch migrate --login-roles` and the host setup call.
- The migrator is the owner of every object (docker-compose: ``postgres``); no process role owns anything,
  so none can create, alter, drop or truncate a table. Plain storage's partitions are made and dropped by
  three owner functions run as SECURITY DEFINER, which only the processes that need them may execute.

Why a grants step rather than ALTER DEFAULT PRIVILEGES: defaults would give every new table the same grants,
whereas here each table says who may do what; and a migration that re-creates a table keeps its grants.
`unclassified_relations` lists a relation no entry here mentions: tests/integration/test_database_roles.py
fails on it, so a migration that adds a table must say who may use it (docs/decisions/database-roles.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping

import psycopg
from psycopg import sql

from safewatch.db import one_row
from safewatch.schema.layout import READING_TABLES

log = logging.getLogger(__name__)

PROCESSES = ("ingest", "alerts", "notifier", "api", "grafana")
DB_PASSWORD_ENV_PREFIX = "SAFEWATCH_DB_PASSWORD_"  # + INGEST, ALERTS …: the login roles' passwords


def group_role(process: str) -> str:
    """The NOLOGIN role holding a process's grants, e.g. safewatch_ingest."""
    return f"safewatch_{process}"


def login_role(process: str) -> str:
    """The role a process logs in as (a member of its group), e.g. safewatch_ingest_login."""
    return f"safewatch_{process}_login"


R = "SELECT"
RW = "SELECT, INSERT, UPDATE"
RWD = "SELECT, INSERT, UPDATE, DELETE"
APPEND = "SELECT, INSERT"  # audit trails: written once, never changed

_READINGS = tuple(t.name for t in READING_TABLES)
# Rollups: tables on plain PostgreSQL; views over per-table continuous aggregates on TimescaleDB.
_ROLLUPS = ("readings_1m", "readings_1h", *(t.minute for t in READING_TABLES), *(t.hour for t in READING_TABLES))

# Who may do what, per relation. A relation absent from this database (the other storage's) is skipped.
ACCESS: dict[str, dict[str, str]] = {
    "ingest": {
        "safewatch_meta": R, "equipment": R, "metrics": R,
        **dict.fromkeys(_READINGS, RW),  # COPY, and the upsert that fills gaps on a redelivery
        "events": APPEND, "gateway_status": RW, "dead_letters": RW,
        "rollup_dirty": RW,  # plain storage: the minutes a batch touched
        "system_alerts": RW,  # the housekeeping's TimescaleDB job watch (schema 041)
        "system_alert_notices": APPEND,  # the trigger on system_alerts runs as the writer (schema 046)
    },
    "alerts": {
        "safewatch_meta": R, "equipment": R, "divisions": R, "units": R, "gateways": R, "metrics": R,
        "gateway_status": R, "alert_rule_overrides": R,
        "alerts": RW, "alert_transitions": APPEND, "alert_floods": RW,
        "alert_engine_state": RW, "alert_engine_shard": RW, "alert_effect_marks": RW,
        "escalation_timers": RW,  # the trigger on alert_transitions runs as the writer (schema 020)
    },
    "notifier": {
        "safewatch_meta": R, "equipment": R, "divisions": R, "units": R, "gateways": R, "metrics": R,
        "escalation_policies": R, "supervision_escalation_policies": R, "division_routing": R,
        "contacts": R, "contact_channels": R,
        "alerts": "SELECT, UPDATE", "alert_transitions": APPEND, "alert_escalations": APPEND,
        "escalation_timers": RW, "notification_alerts": RW, "outbox": RW, "outbox_attempts": APPEND,
        "system_alerts": R, "system_alert_notices": RW,  # system alerts told to the region (schema 046)
    },
    "api": {
        "safewatch_meta": R, "metrics": R, "gateway_status": R, "events": R, "readings": R,
        **dict.fromkeys(_ROLLUPS, R),
        "users": RW,  # people are retired, never deleted
        "divisions": "SELECT, UPDATE", "units": RW, "equipment": RW, "gateways": RW,
        "equipment_audit": APPEND, "registry_audit": APPEND,
        "contacts": RWD, "contact_channels": RWD, "escalation_policies": RWD, "alert_rule_overrides": RWD,
        "alerts": "SELECT, UPDATE", "alert_transitions": APPEND, "alert_notes": APPEND,
        "escalation_timers": RW,  # acknowledging writes a transition: the trigger runs as the API
        "alert_escalations": R, "alert_floods": R, "alert_responses": R, "division_routing": R,
        "outbox": R, "notification_alerts": R, "system_alerts": R,
        # Re-processing a dead letter (POST /api/v1/deadletters/reprocess) runs the ingest's writer.
        **dict.fromkeys(_READINGS, RW), "dead_letters": RW, "rollup_dirty": RW,
    },
    "grafana": {  # read-only, and only what deploy/grafana/dashboards query: no people, no contacts
        "divisions": R, "equipment": R, "gateways": R, "gateway_status": R, "metrics": R, "alerts": R,
        "readings_1m": R,
    },
}
# Owner functions the processes run as SECURITY DEFINER (they create and drop plain storage's partitions).
DEFINER_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "safewatch_ensure_partitions": ("ingest", "api"),
    "safewatch_refresh_rollups": ("ingest",),
    "safewatch_drop_old_partitions": ("ingest",),
}
# Only the owner (the migrator) uses these.
OWNER_ONLY = ("schema_migrations", "daily_partitioned")

SELECT_PRIVILEGED_LOGIN = "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = %s"
SELECT_ROLE = "SELECT 1 FROM pg_roles WHERE rolname = %s"
SELECT_RELATION = "SELECT to_regclass(%s)"  # NULL where this storage has no such relation
SELECT_PUBLIC_RELATIONS = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
"""
SELECT_OWNED_SEQUENCES = """
SELECT s.oid::regclass::text FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
WHERE d.refobjid = to_regclass(%s) AND d.deptype IN ('a', 'i')
"""
SELECT_FUNCTIONS = """
SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proname = %s
"""
REVOKE_ALL = """
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {roles};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {roles};
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {roles};
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {roles};
GRANT CONNECT ON DATABASE {database} TO {roles};
"""
# Temporary tables: the ingest's and the alert worker's COPY staging, the API's registry import; not Grafana,
# which writes nothing at all (PUBLIC may make them by default).
GRANT_TEMPORARY = """
REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC;
GRANT TEMPORARY ON DATABASE {database} TO {roles};
"""
MAKE_DEFINER = "ALTER FUNCTION {function} SECURITY DEFINER SET search_path = public, pg_temp"
REVOKE_EXECUTE_FROM_PUBLIC = "REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC"


class RolesUnavailable(RuntimeError):
    """Raised when the group roles are missing and this connection's role may not create them (no CREATEROLE)."""


def _ident_list(names: list[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def ensure_group_roles(conn: psycopg.Connection) -> None:
    """Create the NOLOGIN group roles this cluster lacks (roles are shared by every database of a cluster)."""
    for process in PROCESSES:
        name = group_role(process)
        if conn.execute(SELECT_ROLE, (name,)).fetchone():
            continue
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            pass  # another database's migration made it at the same moment
        except psycopg.errors.InsufficientPrivilege as exc:
            raise RolesUnavailable(f"cannot create the database role {name}: run `safewatch migrate` as the owner "
                                   f"with CREATEROLE (docker-compose: postgres), or have an administrator run "
                                   f"CREATE ROLE {name} NOLOGIN") from exc
        else:
            log.info("created database role", extra={"role": name})


def apply_grants(conn: psycopg.Connection) -> None:
    """Make the group roles and give each exactly ``ACCESS`` in this database (idempotent, one transaction)."""
    ensure_group_roles(conn)
    groups = [group_role(p) for p in PROCESSES]
    database = sql.Identifier(conn.info.dbname)
    with conn.transaction():
        conn.execute(sql.SQL(REVOKE_ALL).format(roles=_ident_list(groups), database=database))
        conn.execute(sql.SQL(GRANT_TEMPORARY).format(
            roles=_ident_list([group_role(p) for p in PROCESSES if p != "grafana"]), database=database))
        for process, relations in ACCESS.items():
            role = sql.Identifier(group_role(process))
            for relation, privileges in relations.items():
                if one_row(conn.execute(SELECT_RELATION, (relation,)))[0] is None:
                    continue
                conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privileges), sql.Identifier(relation),
                                                                     role))
                if "INSERT" in privileges:  # its id sequence, if it has one
                    for (sequence,) in conn.execute(SELECT_OWNED_SEQUENCES, (relation,)).fetchall():
                        conn.execute(sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(sql.SQL(sequence), role))
        for name, processes in DEFINER_FUNCTIONS.items():
            for (function,) in conn.execute(SELECT_FUNCTIONS, (name,)).fetchall():
                signature = sql.SQL(function)  # regprocedure text: already quoted where needed
                conn.execute(sql.SQL(MAKE_DEFINER).format(function=signature))
                conn.execute(sql.SQL(REVOKE_EXECUTE_FROM_PUBLIC).format(function=signature))
                conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                    signature, _ident_list([group_role(p) for p in processes])))
    log.info("granted the process roles their access", extra={"database": conn.info.dbname})


def unclassified_relations(conn: psycopg.Connection) -> list[str]:
    """Tables and views of this database that neither ``ACCESS`` nor ``OWNER_ONLY`` mentions."""
    known = {r for relations in ACCESS.values() for r in relations} | set(OWNER_ONLY)
    return sorted(name for (name,) in conn.execute(SELECT_PUBLIC_RELATIONS).fetchall() if name not in known)


def scram_verifier(password: str, *, iterations: int = 4096, salt: bytes | None = None) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of ``password``: the server stores this, never the password.

    Computed here so the plain password never reaches the server (nor its statement log); RFC 5802/7677.
    """
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def provision_login_roles(conn: psycopg.Connection, passwords: Mapping[str, str]) -> None:
    """Create or update the LOGIN role of each process in ``passwords`` (keys: ingest, alerts, notifier, api,
    grafana), set its password and make it a member of its group role. Needs CREATEROLE (the owner/migrator).

    A login role may do nothing but what its group may: no superuser, no database or role creation. Each role
    is changed in a transaction of its own (a savepoint when ``conn`` is in one: the caller then commits).
    Passwords reach the server only as SCRAM verifiers.
    """
    unknown = sorted(set(passwords) - set(PROCESSES))
    if unknown:
        raise ValueError(f"no such process role {unknown}; the keys are {', '.join(PROCESSES)}")
    empty = sorted(k for k, v in passwords.items() if not v)
    if empty:
        raise ValueError(f"empty password for {empty}: generate one (scripts/make-env) and try again")
    ensure_group_roles(conn)
    for process, password in passwords.items():
        name = sql.Identifier(login_role(process))
        verifier = sql.Literal(scram_verifier(password))
        with conn.transaction():
            exists = conn.execute(SELECT_ROLE, (login_role(process),)).fetchone() is not None
            if exists:
                # Only a superuser may name SUPERUSER or REPLICATION in ALTER ROLE, and the owner that re-runs
                # setup need not be one: leave those out and refuse a login that holds them instead.
                conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN INHERIT NOCREATEDB NOCREATEROLE PASSWORD {}")
                             .format(name, verifier))
                privileged = conn.execute(SELECT_PRIVILEGED_LOGIN, (login_role(process),)).fetchone()
                if privileged is not None and (privileged[0] or privileged[1]):
                    raise ValueError(
                        f"login role {login_role(process)} is a superuser or may replicate; as a superuser run "
                        f"ALTER ROLE {login_role(process)} NOSUPERUSER NOREPLICATION, then run this again")
            else:
                conn.execute(sql.SQL(
                    "CREATE ROLE {} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}"
                ).format(name, verifier))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group_role(process)), name))
        log.info("login role %s", "updated" if exists else "created",
                 extra={"role": login_role(process), "group": group_role(process)})
