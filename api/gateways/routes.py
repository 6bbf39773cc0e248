"""Gateway endpoints: list, read, register (with credentials), rename, rotate credentials, retire.

Credentials are issued by the API and stored only as Mosquitto PBKDF2 hashes; the broker learns them
when an operator runs `safewatch gateways broker-files` (docs/broker-acl.md).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query
from psycopg.rows import DictRow

from api.deps import WRITE_REGISTRY, Conn, CurrentUser, require
from api.errors import NotFound, responses
from api.gateways import queries as q
from api.gateways.models import (
    GatewayCreate,
    GatewayCredentials,
    GatewayPage,
    GatewayRead,
    GatewayUpdate,
    RetireGateway,
)
from api.pagination import BadCursor
from api.registry_audit import record_change
from safewatch.db import one_row
from safewatch.registry.broker import gateway_prefix, mosquitto_hash, new_secret
from safewatch.registry.records import GATEWAY_ID, changes

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"])

GatewayId = Annotated[str, Path(pattern=GATEWAY_ID)]


def _read(row: dict[str, Any]) -> GatewayRead:
    return GatewayRead(**row, topic_prefix=gateway_prefix(row["league_code"], row["id"]) + "/#")


def _get_or_404(conn: psycopg.Connection[DictRow], scope: str, gateway_id: str) -> GatewayRead:
    row = q.get_gateway(conn, scope=scope, gateway_id=gateway_id)
    if row is None:
        raise NotFound(f"gateway {gateway_id} is not in your jurisdiction's registry", ["path", "gateway_id"])
    return _read(row)


def _for_update(conn: psycopg.Connection[DictRow], scope: str, gateway_id: str) -> dict[str, Any]:
    row = conn.execute(q.SELECT_GATEWAY_FOR_UPDATE, {"scope": scope, "id": gateway_id}).fetchone()
    if row is None:
        raise NotFound(f"gateway {gateway_id} is not registered with a league in your jurisdiction",
                       ["path", "gateway_id"])
    if row["retired_at"] is not None:
        raise HTTPException(409, detail=[{"msg": f"gateway {gateway_id} is retired", "loc": ["path", "gateway_id"],
                                          "type": "retired"}])
    return row


def _audit(conn: psycopg.Connection[DictRow], key: str, actor: str, action: str, what: dict[str, Any]) -> None:
    record_change(conn, "gateway", key, actor, action, what)


def _cursor(value: str | None) -> str | None:
    if not value:
        return None
    try:
        decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if not decoded or "\x00" in decoded:
        raise BadCursor("cursor is not one this API returned; start again without it", ["query", "cursor"])
    return decoded


@router.get("", response_model=GatewayPage)
def list_(conn: Conn, user: CurrentUser,
          league: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
          online: bool | None = None, include_retired: bool = False,
          cursor: Annotated[str | None, Query(max_length=128)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> GatewayPage:
    rows = q.list_gateways(conn, scope=user.division_code, league=league, online=online,
                           include_retired=include_retired, after=_cursor(cursor), limit=limit)
    next_cursor = (base64.urlsafe_b64encode(rows[-1]["id"].encode()).decode().rstrip("=")
                   if len(rows) == limit else None)
    return GatewayPage(items=[_read(r) for r in rows], next_cursor=next_cursor)


@router.post("", responses=responses(409),
             response_model=GatewayCredentials, status_code=201, dependencies=[require(*WRITE_REGISTRY)])
def create(body: GatewayCreate, conn: Conn, user: CurrentUser) -> GatewayCredentials:
    """Register a gateway with its league; the response carries its MQTT password, shown this once."""
    secret = new_secret()
    with conn.transaction():
        league = conn.execute(q.SELECT_LEAGUE, {"scope": user.division_code, "code": body.league_code}).fetchone()
        if league is None or league["level"] != "league":
            raise HTTPException(422, detail=[{"msg": f"{body.league_code} is not a league (盟市) in the registry's "
                                              "divisions", "loc": ["body", "league_code"], "type": "unknown"}])
        if not league["in_scope"]:
            raise HTTPException(403, detail=[{"msg": f"league {body.league_code} is outside your jurisdiction",
                                              "loc": ["body", "league_code"], "type": "forbidden"}])
        try:
            with conn.transaction():
                conn.execute(q.INSERT_GATEWAY, {**body.model_dump(), "password_hash": mosquitto_hash(secret)})
        except psycopg.errors.UniqueViolation:
            raise HTTPException(409, detail=[{"msg": f"gateway {body.id} is already registered",
                                              "loc": ["body", "id"], "type": "duplicate"}]) from None
        _audit(conn, body.id, user.username, "create", body.model_dump(exclude_none=True))
    return GatewayCredentials(gateway=_get_or_404(conn, user.division_code, body.id), mqtt_username=body.id,
                              mqtt_password=secret)


@router.get("/{gateway_id}", response_model=GatewayRead)
def get(gateway_id: GatewayId, conn: Conn, user: CurrentUser) -> GatewayRead:
    return _get_or_404(conn, user.division_code, gateway_id)


@router.patch("/{gateway_id}", responses=responses(409),
              response_model=GatewayRead, dependencies=[require(*WRITE_REGISTRY)])
def update(gateway_id: GatewayId, body: GatewayUpdate, conn: Conn, user: CurrentUser) -> GatewayRead:
    """Rename. The league is fixed: it is part of the gateway's topic prefix (register a new gateway instead)."""
    with conn.transaction():
        current = _for_update(conn, user.division_code, gateway_id)
        patch = body.model_dump(exclude_unset=True)
        reason = patch.pop("reason", None)
        diff = changes({"name": current["name"]}, {"name": patch.get("name", current["name"])})
        if diff:
            conn.execute(q.UPDATE_GATEWAY, {"name": patch.get("name"), "id": gateway_id})
            _audit(conn, gateway_id, user.username, "update", {**diff, **({"reason": reason} if reason else {})})
    return _get_or_404(conn, user.division_code, gateway_id)


@router.post("/{gateway_id}/credentials", responses=responses(409),
             response_model=GatewayCredentials, dependencies=[require(*WRITE_REGISTRY)])
def rotate_credentials(gateway_id: GatewayId, conn: Conn, user: CurrentUser) -> GatewayCredentials:
    """Issue a new MQTT password (the old one stops working when the broker files are regenerated)."""
    secret = new_secret()
    with conn.transaction():
        _for_update(conn, user.division_code, gateway_id)
        conn.execute(q.ROTATE_CREDENTIALS, {"password_hash": mosquitto_hash(secret), "id": gateway_id})
        _audit(conn, gateway_id, user.username, "rotate_credentials", {})
    return GatewayCredentials(gateway=_get_or_404(conn, user.division_code, gateway_id), mqtt_username=gateway_id,
                              mqtt_password=secret)


@router.post("/{gateway_id}/retire", responses=responses(409),
             response_model=GatewayRead, dependencies=[require(*WRITE_REGISTRY)])
def retire(gateway_id: GatewayId, body: RetireGateway, conn: Conn, user: CurrentUser) -> GatewayRead:
    """Retire a gateway with no live equipment bound; it loses broker access at the next broker-files run."""
    with conn.transaction():
        _for_update(conn, user.division_code, gateway_id)
        bound = one_row(conn.execute(q.COUNT_BOUND_LIVE, (gateway_id,)))["n"]
        if bound:
            raise HTTPException(409, detail=[{"msg": f"gateway {gateway_id} still reports {bound} live equipment; "
                                              "rebind them (PATCH /api/v1/equipment/{code} gateway_id) first",
                                              "loc": ["path", "gateway_id"], "type": "in_use"}])
        conn.execute(q.RETIRE_GATEWAY, (gateway_id,))
        _audit(conn, gateway_id, user.username, "retire", {"reason": body.reason})
    return _get_or_404(conn, user.division_code, gateway_id)
