"""The shipped Prometheus and Grafana configuration holds together against the real code and database.

- every SQL query of the fleet dashboard runs on the real schema (TimescaleDB and plain PostgreSQL), as
  Grafana's read-only database role, and counts what is there;
- every metric the service-health dashboard plots is one that a SafeWatch process exports;
- Prometheus scrapes each process at the port its settings default to, the config passes promtool,
  and a real Prometheus scrapes a real API's /metrics.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from alerts.metrics import AlertMetrics
from alerts.notifier_worker import NotifierMetrics
from api.app import create_app
from ingest.metrics import IngestMetrics
from safewatch.db import one_row
from safewatch.demo import free_port
from safewatch.registry.divisions import parse_divisions, shipped_divisions_text
from safewatch.registry.seed import demo_registry, insert_registry
from safewatch.settings import ApiSettings, DbSettings, Settings
from tests.services import STORAGES, create_database, drop_database, process_url
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
FLEET = json.loads((DEPLOY / "grafana" / "dashboards" / "fleet-telemetry.json").read_text(encoding="utf-8"))
HEALTH = json.loads((DEPLOY / "grafana" / "dashboards" / "service-health.json").read_text(encoding="utf-8"))
PROMETHEUS = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
DATASOURCES = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "safewatch.yml").read_text())


def grafana_to_sql(query: str, *, league: str, equipment: str, metric: str) -> str:
    """Expand the Grafana macros and variables the dashboard uses into plain SQL over the last 6 hours."""
    query = re.sub(r"\$__timeFilter\(([^)]+)\)", r"(\1 BETWEEN now() - interval '6 hours' AND now())", query)
    return query.replace("$league", league).replace("$equipment", equipment).replace("$metric", metric)


def dashboard_queries() -> list[tuple[str, str]]:
    panels = [(p["title"], t["rawSql"]) for p in FLEET["panels"] for t in p.get("targets", [])]
    variables = [(f"variable {v['name']}", v["query"]) for v in FLEET["templating"]["list"]]
    return panels + variables


@pytest.fixture(scope="module", params=STORAGES)
def fleet_db(request: pytest.FixtureRequest) -> Iterator[str]:
    url = create_database(storage=request.param)
    yield url
    drop_database(url)


def test_every_fleet_dashboard_query_runs_and_counts_what_is_stored(fleet_db):
    registry = demo_registry(parse_divisions(shipped_divisions_text()), 30, seed=5, gateway_prefix="grafana")
    with psycopg.connect(fleet_db) as conn:
        insert_registry(conn, registry)
        code = registry.equipment[0]["code"]
        metric = one_row(conn.execute("SELECT m.key FROM metrics m JOIN equipment e ON e.category = m.category "
                                      "WHERE e.code = %s ORDER BY m.id LIMIT 1", (code,)))[0]
    # As Grafana runs them: its read-only database role (safewatch/schema/roles.py).
    with psycopg.connect(process_url(fleet_db, "grafana")) as conn:
        results = {}
        for title, query in dashboard_queries():
            sql = grafana_to_sql(query, league="150000", equipment=code, metric=metric)
            try:
                results[title] = conn.execute(sql).fetchall()
            except psycopg.Error as exc:
                pytest.fail(f"panel {title!r} fails on {fleet_db.rsplit('/', 1)[1]}: {exc}\n{sql}")
    assert results["Equipment"] == [(30,)]
    assert (code,) in results["variable equipment"]
    assert results["variable metric"][0] == (metric,)
    assert [r[0] for r in results["Open alerts by severity"]] == ["critical", "major", "minor", "warning"]


def _exported_metric_names() -> set[str]:
    """Every metric a SafeWatch process exports: workers' metric classes and the API's /metrics."""
    registry = CollectorRegistry()
    IngestMetrics(registry)
    AlertMetrics(registry, leagues=["150100"])  # labelled series appear once a league is known
    NotifierMetrics(registry)
    text = generate_latest(registry).decode()
    app = create_app(Settings(api=ApiSettings(jwt_secret="x" * 32)), registry=CollectorRegistry())

    async def scrape_api() -> str:
        # In-process ASGI calls (no lifespan, so no database): the first request builds the metrics middleware.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            await client.get("/openapi.json")
            return (await client.get("/metrics")).text

    text += asyncio.run(scrape_api())
    return set(re.findall(r"^(safewatch_[a-z0-9_]+)", text, re.M)) | {"up"}


def test_every_plotted_metric_is_exported_by_a_process():
    exported = _exported_metric_names()
    plotted = {name for p in HEALTH["panels"] for t in p.get("targets", [])
               for name in re.findall(r"\b(safewatch_[a-z0-9_]+|up)\b", t["expr"])}
    assert plotted, "the service-health dashboard plots nothing"
    assert plotted <= exported, f"plotted but exported by no process: {sorted(plotted - exported)}"


def test_datasources_are_the_ones_the_dashboards_use():
    uids = {d["uid"]: d["type"] for d in DATASOURCES["datasources"]}
    for dashboard in (FLEET, HEALTH):
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] in uids, panel["title"]
                assert panel["datasource"]["type"] == uids[panel["datasource"]["uid"]], panel["title"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro" in mounts
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "safewatch.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


def test_prometheus_scrapes_every_process_at_its_default_port():
    defaults = Settings()
    expected = {"ingest": defaults.ingest.metrics_port, "alerts": defaults.alerts.metrics_port,
                "notifier": defaults.notifier.metrics_port, "api": defaults.api.port}
    jobs = {j["job_name"]: j["dns_sd_configs"][0]["port"]
            for j in PROMETHEUS["scrape_configs"] if "dns_sd_configs" in j}
    assert jobs == expected
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus binary: apt-get install -y prometheus")
def test_a_real_prometheus_scrapes_the_api(pg_url, tmp_path):
    settings = Settings(db=DbSettings(url=pg_url), api=ApiSettings(port=free_port(), jwt_secret="y" * 32))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, registry=CollectorRegistry()), host="127.0.0.1",
                                           port=settings.api.port, log_config=None, access_log=False))
    api = threading.Thread(target=server.run, daemon=True)
    api.start()
    wait_until(lambda: server.started, bool, timeout=30, what="the API to start")
    # The shipped api job, pointed at this API instead of the compose service name.
    job = next(j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == "api")
    config = {"global": {"scrape_interval": "1s"},
              "scrape_configs": [{"job_name": "api", "metrics_path": job["metrics_path"],
                                  "static_configs": [{"targets": [f"127.0.0.1:{settings.api.port}"]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def scraped() -> list:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/query",
                              params={"query": 'safewatch_build_info{job="api"}'}, timeout=2)
                return r.json()["data"]["result"] if r.status_code == 200 else []
            except httpx.TransportError:
                return []

        result = wait_until(scraped, bool, timeout=30, what="prometheus to scrape the API")
        assert result[0]["metric"]["version"]
    finally:
        prom.terminate()
        prom.wait(timeout=10)
        server.should_exit = True
        api.join(timeout=10)
