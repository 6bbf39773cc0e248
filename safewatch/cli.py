"""The `safewatch` command: one entry point, a subcommand per process or chore.

Only this module builds `Settings()`; everything else receives it.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path

import click

from safewatch import logs
from safewatch.runtime import EXIT_PORT_UNAVAILABLE, listen_socket, port_unavailable_reason, setting_env_var
from safewatch.settings import Settings

log = logging.getLogger(__name__)


def _settings(process: str) -> Settings:
    settings = Settings()
    logs.configure(settings.log_level, settings.log_json, process=process)
    return settings


def _stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT set the event: workers finish the batch in hand, ack it, and exit."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _serve_metrics(settings: Settings, process: str) -> None:
    """The process's /metrics, served before its work starts; the worker is then told not to serve it again.

    One place for every worker: a busy port is one ERROR line naming the variable, and the worker runs on.
    """
    from safewatch.metrics_server import serve_process_metrics

    serve_process_metrics(settings, process)
    getattr(settings, process).metrics_port = None


@click.group()
@click.version_option(package_name="safewatch")
def main() -> None:
    """SafeWatch: special-equipment IoT safety monitoring."""


def _login_passwords(env_file: Path | None) -> dict[str, str]:
    """The process roles' passwords: SAFEWATCH_DB_PASSWORD_<PROCESS> from the environment, else DB_PASSWORD_<PROCESS>
    from ``env_file`` (docker-compose's .env, as scripts/make-env writes it)."""
    import os

    from safewatch.schema.roles import DB_PASSWORD_ENV_PREFIX, PROCESSES

    from_file: dict[str, str] = {}
    if env_file is not None:
        for line in env_file.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.lstrip().startswith("#"):
                from_file[key.strip()] = value.strip()
    found: dict[str, str] = {}
    for process in PROCESSES:
        name = process.upper()
        password = os.environ.get(DB_PASSWORD_ENV_PREFIX + name) or from_file.get(f"DB_PASSWORD_{name}")
        if password:
            found[process] = password
    return found


def _provision_login_roles(url: str, passwords: dict[str, str]) -> None:
    import psycopg

    from safewatch.schema.roles import login_role, provision_login_roles

    with psycopg.connect(url, autocommit=True) as conn:
        provision_login_roles(conn, passwords)
    click.echo("login roles: " + ", ".join(f"{login_role(p)} ({p})" for p in passwords))


@main.command()
@click.option("--storage", type=click.Choice(["plain", "timescale"]), default=None,
              help="Force the storage of a new database (default: TimescaleDB when available).")
@click.option("--login-roles", is_flag=True,
              help="Also create or update the processes' login roles, as `safewatch db-roles` does.")
def migrate(storage: str | None, login_roles: bool) -> None:
    """Create or update the database schema (idempotent) and load the shipped divisions."""
    import psycopg

    from safewatch.db import ensure_database
    from safewatch.registry.divisions import load_divisions
    from safewatch.schema.migrate import StorageMismatch
    from safewatch.schema.migrate import migrate as run_migrations
    from safewatch.schema.roles import DB_PASSWORD_ENV_PREFIX, PROCESSES

    settings = _settings("migrate")
    passwords = _login_passwords(None) if login_roles else {}
    missing = sorted(set(PROCESSES) - set(passwords))
    if login_roles and missing:
        raise click.UsageError(f"--login-roles: set {', '.join(DB_PASSWORD_ENV_PREFIX + m.upper() for m in missing)} "
                               "(scripts/make-env writes them to .env as DB_PASSWORD_<PROCESS>)")
    ensure_database(settings.db.url)
    try:
        chosen = run_migrations(settings.db.url, storage=storage)
    except StorageMismatch as exc:
        click.echo(f"not migrated: {exc}", err=True)
        sys.exit(2)
    with psycopg.connect(settings.db.url) as conn:
        count = load_divisions(conn)
    click.echo(f"migrated ({chosen} storage); {count} divisions loaded")
    if passwords:
        _provision_login_roles(settings.db.url, passwords)


@main.command("db-roles")
@click.option("--env-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Read DB_PASSWORD_<PROCESS> from this file (docker-compose's .env) where the environment "
                   "has no SAFEWATCH_DB_PASSWORD_<PROCESS>.")
def db_roles(env_file: Path | None) -> None:
    """Create or update the login roles the processes connect as (run as the database owner, after migrate).

    Each of ingest, alerts, notifier, api and grafana whose password is given gets the login role
    safewatch_<process>_login, a member of safewatch_<process> (the grants: docs/deploying.md). Then point each
    process's SAFEWATCH_DB__URL at its own login role.
    """
    from safewatch.schema.roles import DB_PASSWORD_ENV_PREFIX

    settings = _settings("db-roles")
    passwords = _login_passwords(env_file)
    if not passwords:
        raise click.UsageError(f"no passwords: set {DB_PASSWORD_ENV_PREFIX}<PROCESS> (INGEST, ALERTS, NOTIFIER, API, "
                               "GRAFANA) or give --env-file .env")
    _provision_login_roles(settings.db.url, passwords)


@main.command("load-divisions")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
def load_divisions_cmd(csv_path: Path | None) -> None:
    """Load divisions (code,name,name_en,parent_code,level) from CSV_PATH or the shipped Inner Mongolia file."""
    import psycopg

    from safewatch.registry.divisions import load_divisions

    settings = _settings("load-divisions")
    with psycopg.connect(settings.db.url) as conn:
        click.echo(f"{load_divisions(conn, csv_path)} divisions loaded")


@main.command("seed-demo")
@click.option("--equipment", default=1200, show_default=True, help="How many equipment to generate.")
@click.option("--seed", default=1, show_default=True)
def seed_demo(equipment: int, seed: int) -> None:
    """Generate a demo registry spread over every banner (idempotent)."""
    import psycopg

    from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
    from safewatch.registry.seed import demo_registry, insert_registry

    settings = _settings("seed-demo")
    with psycopg.connect(settings.db.url) as conn:
        total = insert_registry(conn, demo_registry(parse_divisions(shipped_divisions_text()), equipment, seed=seed))
    click.echo(f"{total} equipment in the registry")


@main.command("create-user")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(["region_inspector", "league_inspector", "banner_inspector",
                                                          "emergency_responder", "registry_clerk", "administrator"]))
@click.option("--division", required=True, help="6-digit division code the person's jurisdiction covers.")
@click.password_option()
def create_user(username: str, role: str, division: str, password: str) -> None:
    """Create or update a person who logs in to the API and dashboard."""
    import psycopg

    from api.auth.users import upsert_user

    settings = _settings("create-user")
    with psycopg.connect(settings.db.url) as conn:
        upsert_user(conn, username, password, role, division)
    click.echo(f"user {username} ({role}, {division}) saved")


def _shipped_broker_conf() -> Path:
    """deploy/mosquitto/mosquitto.conf of the source checkout this package runs from, else of the current one."""
    for base in (Path(__file__).resolve().parents[1], Path.cwd()):
        if (found := base / "deploy" / "mosquitto" / "mosquitto.conf").is_file():
            return found
    return Path("deploy/mosquitto/mosquitto.conf")


@main.command()
@click.option("--root", default="/", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Write everything under this directory instead of / (etc/safewatch, etc/systemd/system, "
                   "etc/mosquitto); for tests and staging.")
@click.option("--db-url", envvar="SAFEWATCH_DB__URL", show_envvar=True,
              default="postgresql://safewatch@127.0.0.1:5432/safewatch", show_default=True,
              help="The database as its owner (migrations run as it; it makes the processes' logins, so it needs "
                   "CREATEROLE). Its password from PGPASSWORD or ~/.pgpass keeps it off the command line.")
@click.option("--hostname", "hostnames", multiple=True, metavar="NAME",
              help="The broker's name or address as gateways dial it, for the trial TLS certificate (repeatable).")
@click.option("--tls-from", "operator_tls", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A directory with your server.crt, server.key (and ca.crt); without it a trial CA and "
                   "certificate are made once.")
@click.option("--user", default="safewatch", show_default=True, help="The system user the units run as.")
@click.option("--system-user/--no-system-user", default=True, show_default=True,
              help="Create that user when it does not exist (useradd).")
@click.option("--mqtt-port", default=1883, show_default=True, help="The broker's internal listener (127.0.0.1).")
@click.option("--mqtt-tls-port", default=8883, show_default=True, help="The gateways' TLS listener.")
@click.option("--mqtt-tls-bind", default="", help="The gateways' listener address (default: every interface).")
@click.option("--mqtt-health-port", default=1880, show_default=True, help="The broker's health listener.")
@click.option("--api-host", default="127.0.0.1", show_default=True, help="Where the API listens (behind your proxy).")
@click.option("--api-port", default=8000, show_default=True)
@click.option("--admin-username", default=None,
              help="The first administrator's login (default: the secrets file's FIRST_ADMIN_USERNAME, else admin).")
@click.option("--admin-password", envvar="FIRST_ADMIN_PASSWORD", default=None,
              help="The first administrator's password (or FIRST_ADMIN_PASSWORD); default: the one setup generates "
                   "into secrets.env. Used only while no active administrator exists.")
@click.option("--storage", type=click.Choice(["plain", "timescale"]), default=None,
              help="Force the storage of a new database (default: TimescaleDB when available).")
@click.option("--set", "extra", multiple=True, metavar="SAFEWATCH_NAME=VALUE",
              help="A setting every unit gets (repeatable), e.g. SAFEWATCH_NOTIFIER__EXTERNAL_URL=https://...")
@click.option("--broker-conf", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The shipped deploy/mosquitto/mosquitto.conf (default: the source checkout's).")
def setup(root: Path, db_url: str, hostnames: tuple[str, ...], operator_tls: Path | None, user: str,
          system_user: bool, mqtt_port: int, mqtt_tls_port: int, mqtt_tls_bind: str, mqtt_health_port: int,
          api_host: str, api_port: int, admin_username: str | None, admin_password: str | None,
          storage: str | None, extra: tuple[str, ...], broker_conf: Path | None) -> None:
    """Set up a Debian host with the distribution's PostgreSQL and Mosquitto (idempotent; docs/deploying.md)."""
    from safewatch.install.host import HostChoices, run_setup
    from safewatch.install.units import PROCESSES
    from safewatch.registry.broker_conf import GATEWAYS_TLS_PORT, HEALTH_PORT, SERVICES_PORT

    logs.configure("INFO", False, process="setup")
    settings: dict[str, str] = {}
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("SAFEWATCH_"):
            raise click.BadParameter(f"{item!r} is not SAFEWATCH_NAME=VALUE", param_hint="--set")
        settings[name] = value
    conf = broker_conf or _shipped_broker_conf()
    if not conf.is_file():
        raise click.BadParameter(f"{conf} not found: run setup from the SafeWatch source checkout or name the file",
                                 param_hint="--broker-conf")
    choices = HostChoices(
        root=root, db_url=db_url, broker_conf=conf, exec_start=(sys.executable, "-m", "safewatch.cli"),
        hostnames=hostnames or ("localhost",), operator_tls=operator_tls, user=user, create_user=system_user,
        mqtt_ports={SERVICES_PORT: mqtt_port, GATEWAYS_TLS_PORT: mqtt_tls_port, HEALTH_PORT: mqtt_health_port},
        tls_bind=mqtt_tls_bind, api_host=api_host, api_port=api_port, admin_username=admin_username,
        admin_password=admin_password, storage=storage, settings=settings)
    try:
        result = run_setup(choices)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    units = " ".join(f"safewatch-{p}" for p in PROCESSES)
    admin = (f"first administrator {result.admin_created} created; password: FIRST_ADMIN_PASSWORD in "
             f"{result.layout.secrets}" if result.admin_created and admin_password is None else
             f"first administrator {result.admin_created} created" if result.admin_created else
             "an active administrator exists (no password changed)")
    click.echo(f"database migrated ({result.storage} storage); {admin}\n"
               f"wrote {len(result.written)} files: secrets in {result.layout.secrets} (mode 0600), units in "
               f"{result.layout.unit('api').parent}, broker drop-in {result.layout.mosquitto_dropin} "
               f"({result.gateways} gateways)\n"
               f"next: systemctl daemon-reload && systemctl restart mosquitto && systemctl enable --now {units}\n"
               f"after registering gateways: safewatch setup (same options) && systemctl reload mosquitto")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


@main.command()
def ingest() -> None:
    """Run an ingest worker (MQTT → PostgreSQL)."""
    from ingest.worker import run

    settings = _settings("ingest")
    _serve_metrics(settings, "ingest")
    run(settings, stop=_stop_on_signals())


@main.command()
@click.option("--leagues", default="", help="Comma-separated league codes this worker owns (default: all).")
def alerts(leagues: str) -> None:
    """Run an alert worker."""
    from alerts.worker import run

    settings = _settings("alerts")
    if leagues:
        settings.alerts.leagues = [c.strip() for c in leagues.split(",") if c.strip()]
    _serve_metrics(settings, "alerts")
    run(settings, stop=_stop_on_signals())


@main.command()
@click.option("--instance", default=None, hidden=True,
              help="A token /healthz answers with, so whoever started this process knows it is the one answering.")
def api(instance: str | None) -> None:
    """Run the HTTP API and dashboard."""
    import uvicorn

    from api.app import create_app

    settings = _settings("api")
    host, port = settings.api.host, settings.api.port
    try:  # bound here, before start-up, so a busy port is one line naming the setting, not a traceback
        sock = listen_socket(host, port)
    except OSError as exc:
        log.error("cannot serve the API: port %s on %s is %s. Set %s to a free port (or %s to another address)",
                  port, host, port_unavailable_reason(exc), setting_env_var("api", "port"),
                  setting_env_var("api", "host"), extra={"port": port, "host": host, "error": str(exc)})
        sys.exit(EXIT_PORT_UNAVAILABLE)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, instance=instance), host=host, port=port,
                                           log_config=None, access_log=False))
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)  # what uvicorn.run exits with when start-up fails (its log says why)


@main.command()
@click.option("--interval", default=5.0, show_default=True, help="Seconds between two readings of one equipment.")
@click.option("--fault-rate", default=0.0, show_default=True, help="Random faults per equipment-hour.")
@click.option("--gateway-fault-rate", default=0.0, show_default=True,
              help="Random gateway misbehaviour (disconnect, clock skew, duplicates, reordering, bursts) "
                   "per gateway-hour.")
@click.option("--limit", default=1_000_000, show_default=True, help="Simulate at most this many equipment.")
@click.option("--gateway-prefix", default=None, help="Only gateways whose id starts with this.")
@click.option("--demo", "demo_size", type=int, default=None,
              help="Simulate a generated fleet of this many equipment instead of the registry's (no database).")
@click.option("--gateways", "gateway_count", type=int, default=None,
              help="With --demo: how many gateways to spread it over (default: 50 equipment each).")
@click.option("--start", "start", default="now", show_default=True,
              help="Simulated start: 'now', a time ago ('-2h', '-30m', '-1d') or an ISO 8601 time.")
@click.option("--speed", default=1.0, show_default=True,
              help="Simulated seconds per wall second (0: as fast as the broker acks); never ahead of now.")
@click.option("--duration", default=None, type=float, help="Stop after this many simulated seconds.")
@click.option("--fault", "faults", multiple=True, metavar="CODE:KIND:START_S:DURATION_S[:METRIC][:MAGNITUDE]",
              help="Inject an equipment fault, START_S after the start (repeatable); kinds: docs/simulators.md.")
@click.option("--gateway-fault", "gateway_faults", multiple=True, metavar="GATEWAY:KIND:START_S:DURATION_S[:MAGNITUDE]",
              help="Make a gateway misbehave: disconnect, clock_skew, duplicate, out_of_order, burst.")
@click.option("--seed", default=1, show_default=True)
@click.option("--ground-truth", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the injected faults here (CSV when the name ends in .csv, else JSON lines).")
@click.option("--progress-every", default=5.0, show_default=True, help="Seconds between progress lines.")
@click.option("--presence", type=click.Choice(["auto", "own", "none"]), default="auto", show_default=True,
              help="Whether this run stands for its gateways: their stable client ids, last will (offline) and "
                   "online status. 'auto': yes, unless --fault or --gateway-fault is given (a side tool beside a "
                   "running fleet, with client ids of its own and no will: it never knocks the fleet offline).")
def simulate(interval: float, fault_rate: float, gateway_fault_rate: float, limit: int, gateway_prefix: str | None,
             demo_size: int | None, gateway_count: int | None, start: str, speed: float, duration: float | None,
             faults: tuple[str, ...], gateway_faults: tuple[str, ...], seed: int, ground_truth: Path | None,
             progress_every: float, presence: str) -> None:
    """Run a simulated fleet (the registry's, or --demo N), publishing the wire contract over MQTT."""
    import secrets

    from simulators.faults import parse_fault_spec
    from simulators.fleet import demo_fleet, load_fleet, run
    from simulators.identity import Presence, client_prefix, owns_presence
    from simulators.replay import parse_time

    settings = _settings("simulate")
    if demo_size is not None:
        fleet = demo_fleet(demo_size, gateways=gateway_count or max(1, demo_size // 50), seed=seed)
    else:
        import psycopg

        with psycopg.connect(settings.db.url) as conn:
            fleet = load_fleet(conn, limit=limit, gateway_prefix=gateway_prefix)
    if not fleet:
        raise click.ClickException("no equipment bound to gateways in the registry; run `safewatch seed-demo` "
                                   "or simulate a generated fleet with --demo 1000")
    now_ms = int(time.time() * 1000)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if start == "now":
            start_ms = now_ms
        elif start.startswith("-") and start[-1:] in units:
            start_ms = now_ms - int(float(start[1:-1]) * units[start[-1]] * 1000)
        else:
            start_ms = parse_time(start)
    except ValueError:
        raise click.BadParameter(f"{start!r} is not 'now', '-2h'-style or ISO 8601", param_hint="--start") from None
    if now_ms - start_ms > 7 * 86_400_000:
        click.echo("warning: ingest rejects readings older than 7 days; start later than that", err=True)
    categories = {e.code: e.category for e in fleet}
    planned = []
    for spec, scope in [*((f, "equipment") for f in faults), *((f, "gateway") for f in gateway_faults)]:
        try:
            fault = parse_fault_spec(spec, start_ms=start_ms, scope=scope)
            if scope == "equipment" and fault.code not in categories:
                raise ValueError(f"{fault.code} is not in the simulated fleet")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--fault" if scope == "equipment" else "--gateway-fault") \
                from None
        planned.append(fault)
    gateways_n = len({e.gateway_id for e in fleet})
    owner = owns_presence(Presence(presence), explicit_faults=bool(faults or gateway_faults))
    prefix = client_prefix(tool="simulate", run=secrets.token_hex(3), owner=owner)
    click.echo(f"simulating {len(fleet)} equipment behind {gateways_n} gateways every {interval:g} s "
               f"from {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(start_ms / 1000))}Z at speed "
               f"{speed:g}{' (max)' if speed == 0 else ''}", err=True)
    click.echo(f"as the gateways (client ids {prefix}-<gateway>, last will and online status)" if owner else
               f"as a side tool (client ids {prefix}-<gateway>, no last will, no status; --presence own to stand "
               "for the gateways)", err=True)
    result = run(settings, equipment=fleet, interval_s=interval, faults=planned, fault_rate_per_hour=fault_rate,
                 gateway_fault_rate_per_hour=gateway_fault_rate, seed=seed, duration_s=duration,
                 stop=_stop_on_signals(), ground_truth=ground_truth, start_ms=start_ms, speed=speed,
                 progress=lambda p: click.echo(p.line(), err=True), progress_every_s=progress_every,
                 client_prefix=prefix, presence=owner)
    click.echo(f"published {result.messages} messages ({result.acked} acknowledged), {result.readings} readings, "
               f"{result.events} events in {result.elapsed_s:.1f} s"
               + (f"; ground truth in {ground_truth}" if ground_truth else ""))


@main.command()
@click.option("--equipment", default=1200, show_default=True, help="Demo registry size (first run only).")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between readings of one equipment.")
@click.option("--fault-rate", default=0.02, show_default=True,
              help="Random faults per equipment-hour (0.02 × 1,200 equipment ≈ one fault every 2.5 minutes).")
@click.option("--embedded", is_flag=True, help="Start our own PostgreSQL and broker even if local ones answer.")
@click.option("--broker", type=click.Choice(["auto", "amqtt"]), default="auto", show_default=True,
              help="Embedded broker: Mosquitto when installed (auto), or force the pip-installed amqtt.")
@click.option("--port", type=int, default=None,
              help="API port (default: SAFEWATCH_API__PORT, else 8000 when free, else a free one).")
def demo(equipment: int, interval: float, fault_rate: float, embedded: bool, broker: str, port: int | None) -> None:
    """Run the whole system (database, broker, ingest, alerts, API, dashboard, fleet) until Ctrl-C."""
    from safewatch.demo import DemoPortBusy, run

    settings = _settings("demo")
    if port is not None:
        settings.api.port = port
    try:
        run(settings, equipment=equipment, interval_s=interval, fault_rate=fault_rate, embedded=embedded,
            broker=broker)
    except DemoPortBusy as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_PORT_UNAVAILABLE)


@main.command()
def notifier() -> None:
    """Run the notifier: escalation timers (banner → league → region) and outbox delivery."""
    from alerts.notifier_worker import run

    settings = _settings("notifier")
    _serve_metrics(settings, "notifier")
    run(settings, stop=_stop_on_signals())


@main.group()
def deadletters() -> None:
    """List and re-process dead letters (messages the ingest could not store, with the reason)."""


@deadletters.command("list")
@click.option("--reason", default=None, help="Only this reason, e.g. unknown_equipment.")
@click.option("--gateway", default=None, help="Only this gateway id.")
@click.option("--all", "show_all", is_flag=True, help="Include ones already re-processed.")
@click.option("--limit", default=50, show_default=True)
def deadletters_list(reason: str | None, gateway: str | None, show_all: bool, limit: int) -> None:
    """Newest first: id, received, reason, gateway, equipment, detail."""
    import psycopg

    from ingest.deadletters import SELECT_FOR_LIST

    settings = _settings("deadletters")
    with psycopg.connect(settings.db.url) as conn:
        rows = conn.execute(SELECT_FOR_LIST, {"reason": reason, "gateway": gateway, "pending": not show_all,
                                              "limit": limit}).fetchall()
    for id_, received, reason_, gw, code, detail, result in rows:
        state = f" [{result}]" if result else ""
        click.echo(f"{id_}\t{received:%Y-%m-%d %H:%M:%S}\t{reason_}\t{gw or '-'}\t{code or '-'}\t{detail}{state}")
    click.echo(f"{len(rows)} dead letters", err=True)


@deadletters.command("reprocess")
@click.argument("ids", nargs=-1, type=int)
@click.option("--reason", default=None, help="Every pending one with this reason.")
@click.option("--gateway", default=None, help="Every pending one from this gateway.")
@click.option("--limit", default=1000, show_default=True)
def deadletters_reprocess(ids: tuple[int, ...], reason: str | None, gateway: str | None, limit: int) -> None:
    """Re-run pending dead letters (IDS, or all matching --reason/--gateway) once the cause is fixed."""
    import getpass

    import psycopg

    from ingest.deadletters import SELECT_FOR_REPROCESS, reprocess, rows_from

    if not ids and reason is None and gateway is None:
        raise click.UsageError("name the dead letters: IDS, --reason or --gateway")
    settings = _settings("deadletters")
    with psycopg.connect(settings.db.url) as conn, conn.transaction():
        rows = rows_from(conn.execute(SELECT_FOR_REPROCESS, {"ids": list(ids), "reason": reason, "gateway": gateway,
                                                             "limit": limit}).fetchall())
        outcomes = reprocess(conn, rows, actor=f"cli:{getpass.getuser()}", cfg=settings.ingest)
    for o in outcomes:
        click.echo(f"{o.id}\t{o.result}\t{o.readings_stored} readings\t{','.join(o.reasons)}")
    stored = sum(o.result == "stored" for o in outcomes)
    click.echo(f"{len(outcomes)} re-processed: {stored} stored, {len(outcomes) - stored} failed again", err=True)


# --- registry (issue 3): bulk import/export and broker files -------------------------------------------------------

@main.group()
def registry() -> None:
    """Bulk import and export of the equipment registry."""


@registry.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--actor", default="cli", show_default=True, help="Name recorded in the audit trail.")
@click.option("--division", default=None, help="Refuse rows outside this division (default: no limit).")
@click.option("--show-errors", default=50, show_default=True, help="How many bad rows to print.")
def registry_import(path: Path, actor: str, division: str | None, show_errors: int) -> None:
    """Import equipment from a CSV or XLSX file: every row, or none and every bad row listed."""
    import psycopg

    from safewatch.registry.importing import ImportFormatError, import_file

    settings = _settings("registry-import")

    def progress(phase: str, done: int, total: int) -> None:
        # One line per phase, redrawn in place: "validate  40,000 / 100,000 rows".
        click.echo(f"\r{phase:9} {done:>10,} / {total:,} rows", nl=done >= total, err=True)

    started = time.perf_counter()
    try:
        with psycopg.connect(settings.db.url) as conn:
            result = import_file(conn, path, actor=actor, scope=division, progress=progress)
    except ImportFormatError as exc:
        raise click.ClickException(str(exc)) from None
    except psycopg.errors.UniqueViolation:
        raise click.ClickException("another change registered one of these codes during the import; nothing was "
                                   "written: run the import again") from None
    elapsed = time.perf_counter() - started
    if not result.ok:
        for error in result.errors[:show_errors]:
            click.echo(str(error), err=True)
        more = result.errors_total - min(show_errors, len(result.errors))
        if more > 0:
            click.echo(f"... and {more} more", err=True)
        raise click.ClickException(f"{result.errors_total} problems in {result.rows} rows; nothing was written. "
                                   "Fix the rows listed and import the whole file again.")
    click.echo(f"imported {result.inserted} equipment from {path.name} in {elapsed:.1f} s "
               f"({result.inserted / max(elapsed, 1e-9):,.0f} rows/s)")


@registry.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--division", default=None, help="Only this division and what lies under it.")
def registry_export(path: Path, division: str | None) -> None:
    """Export equipment to PATH (.csv or .xlsx) in the import's column layout."""
    import psycopg

    from safewatch.registry.importing import export_csv, export_xlsx

    settings = _settings("registry-export")
    with psycopg.connect(settings.db.url) as conn, path.open("wb") as out:
        writer = export_xlsx if path.suffix.lower() == ".xlsx" else export_csv
        rows = writer(conn, out, scope=division)
    click.echo(f"exported {rows} equipment to {path}")


@main.group()
def gateways() -> None:
    """Gateway credentials and broker configuration."""


@gateways.command("broker-files")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the generated passwd and acl files.")
@click.option("--service", "services", multiple=True, metavar="NAME",
              help="A service account (ingest, alerts …) that reads se/v1/#; its password is read from the "
                   "environment variable SAFEWATCH_BROKER_PASSWORD_<NAME> (repeatable).")
@click.option("--emqx", is_flag=True, help="Also write emqx_users.csv and emqx_acl.conf (docs/broker-acl.md).")
def gateways_broker_files(out_dir: Path, services: tuple[str, ...], emqx: bool) -> None:
    """Write Mosquitto password and ACL files from the registry: each gateway publishes only under its prefix."""
    import os

    import psycopg

    from safewatch.registry.broker import BrokerAccount, gateway_accounts, mosquitto_hash, write_broker_files

    settings = _settings("broker-files")
    accounts = []
    for name in services:
        env = "SAFEWATCH_BROKER_PASSWORD_" + name.upper().replace("-", "_").replace(".", "_")
        password = os.environ.get(env)
        if not password:
            raise click.BadParameter(f"set {env} to the password of service account {name}", param_hint="--service")
        accounts.append(BrokerAccount(name, mosquitto_hash(password)))
    with psycopg.connect(settings.db.url) as conn:
        gateway_list = gateway_accounts(conn)
    written = write_broker_files(out_dir, accounts + gateway_list, emqx=emqx)
    click.echo(f"wrote {', '.join(str(p) for p in written)}: {len(gateway_list)} gateways, {len(accounts)} service "
               "accounts. Reload the broker (kill -HUP <mosquitto pid>) to apply.")


@main.command()
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--equipment", "code", required=True, help="The equipment code the series belongs to (in the registry).")
@click.option("--map", "mapping", multiple=True, required=True, metavar="COLUMN=METRIC",
              help="Publish COLUMN as catalogue METRIC (repeatable).")
@click.option("--time-column", default="ts", show_default=True, help="The column with the time of each row.")
@click.option("--speed", default=1.0, show_default=True, help="Replay speed (10: ten times faster; 0: at once).")
@click.option("--shift-to-now/--keep-timestamps", default=False, show_default=True,
              help="Shift the times so the replay ends in the present (ingest keeps 7 days back, 5 min ahead).")
@click.option("--gateway", default=None, help="Gateway id and --league instead of looking the equipment up.")
@click.option("--league", default=None, help="League code of --gateway.")
@click.option("--category", default=None, help="Equipment category with --gateway (checks the mapped metrics).")
def replay(csv_file: Path, code: str, mapping: tuple[str, ...], time_column: str, speed: float, shift_to_now: bool,
           gateway: str | None, league: str | None, category: str | None) -> None:
    """Publish a recorded CSV time series through the wire contract as CODE's gateway."""
    from simulators.replay import find_equipment, parse_mapping, plan_replay, read_csv, shift_offset
    from simulators.replay import replay as run_replay
    from simulators.simulation import SimEquipment

    settings = _settings("replay")
    if gateway:
        if not league:
            raise click.BadParameter("give the gateway's --league too", param_hint="--league")
        equipment = SimEquipment(code, category or "", {}, gateway, league)
    else:
        import psycopg

        with psycopg.connect(settings.db.url) as conn:
            found = find_equipment(conn, code)
        if found is None:
            raise click.BadParameter(f"{code} is not in the registry; register it or give --gateway and --league",
                                     param_hint="--equipment")
        equipment = found
    try:
        columns = parse_mapping(mapping, equipment.category or None)
        points = plan_replay(read_csv(csv_file), time_column=time_column, mapping=columns)
    except ValueError as exc:
        raise click.ClickException(f"{csv_file}: {exc}") from None
    if not points:
        raise click.ClickException(f"{csv_file}: no rows with values in the mapped columns")
    shift = shift_offset(points, now_ms=int(time.time() * 1000), speed=speed) if shift_to_now else 0
    click.echo(f"replaying {len(points)} rows of {csv_file} as {code} via {equipment.gateway_id} at speed {speed:g}"
               + (f", shifted by {shift / 3_600_000:+.2f} h" if shift else "")
               + " (a side tool: a client id of its own, no last will, no status)", err=True)
    stop = _stop_on_signals()
    sent = run_replay(settings, equipment=equipment, points=points, speed=speed, shift_ms=shift,
                      progress=lambda done, total: click.echo(f"  {done}/{total} rows published", err=True),
                      stop=stop.is_set)
    click.echo(f"published {sent} rows ({sum(len(p.values) for p in points[:sent])} readings)")


if __name__ == "__main__":
    main()
