"""People: administrators create, change and retire the people of their jurisdiction.

Each person is bound to one division; an inspector's role must match its level (a league inspector
to a league). Passwords are stored as Argon2id hashes; a retired person can no longer log in.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query
from psycopg.rows import DictRow

from api.auth.passwords import hash_password
from api.deps import Conn, CurrentUser, require
from api.errors import NotFound, responses
from api.pagination import decode_cursor, encode_cursor
from api.registry_audit import record_change
from api.users import queries as q
from api.users.models import (
    ROLE_LEVEL,
    USERNAME,
    RetireUser,
    Role,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from safewatch.registry.records import changes

router = APIRouter(prefix="/api/v1/users", tags=["users"], dependencies=[require("administrator")])

Username = Annotated[str, Path(pattern=USERNAME)]


def _check_binding(conn: psycopg.Connection[DictRow], *, scope: str, role: str, division: str) -> None:
    row = conn.execute(q.SELECT_DIVISION, {"scope": scope, "code": division}).fetchone()
    if row is None:
        raise HTTPException(422, detail=[{"msg": f"division {division} is not in the registry",
                                          "loc": ["body", "division_code"], "type": "unknown"}])
    if not row["in_scope"]:
        raise HTTPException(403, detail=[{"msg": f"division {division} is outside your jurisdiction",
                                          "loc": ["body", "division_code"], "type": "forbidden"}])
    level = ROLE_LEVEL.get(role)
    if level is not None and row["level"] != level:
        raise HTTPException(422, detail=[{"msg": f"a {role} is bound to a {level}; {division} is a {row['level']}",
                                          "loc": ["body", "division_code"], "type": "mismatch"}])


def _audit(conn: psycopg.Connection[DictRow], key: str, actor: str, action: str, what: dict[str, Any]) -> None:
    record_change(conn, "user", key, actor, action, what)


def _keep_an_administrator(admins: list[int], current: dict[str, Any], *, role_after: str | None) -> None:
    """Refuse to demote or retire the last active administrator (nobody could manage people after)."""
    losing = (current["role"] == "administrator" and current["retired_at"] is None
              and role_after != "administrator")
    if losing and not [a for a in admins if a != current["id"]]:
        raise HTTPException(409, detail=[{"msg": "the last active administrator cannot be demoted or retired; "
                                                 "make another administrator first",
                                          "loc": ["path", "username"], "type": "last_administrator"}])


def _lock_administrators(conn: psycopg.Connection[DictRow]) -> list[int]:
    return [r["id"] if isinstance(r, dict) else r[0] for r in conn.execute(q.LOCK_ACTIVE_ADMINISTRATORS)]


def _get_or_404(conn: psycopg.Connection[DictRow], scope: str, username: str) -> UserRead:
    row = q.get_user(conn, scope=scope, username=username)
    if row is None:
        raise NotFound(f"no person {username} in your jurisdiction", ["path", "username"])
    return UserRead(**row)


@router.get("", response_model=UserPage)
def list_(conn: Conn, user: CurrentUser, role: Role | None = None,
          division: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None, include_retired: bool = False,
          cursor: Annotated[str | None, Query(max_length=64)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> UserPage:
    rows = q.list_users(conn, scope=user.division_code, role=role, division=division,
                        include_retired=include_retired, after=decode_cursor(cursor), limit=limit)
    return UserPage(items=[UserRead(**r) for r in rows],
                    next_cursor=encode_cursor(rows[-1]["id"]) if len(rows) == limit else None)


@router.post("", responses=responses(409), response_model=UserRead, status_code=201)
def create(body: UserCreate, conn: Conn, user: CurrentUser) -> UserRead:
    with conn.transaction():
        _check_binding(conn, scope=user.division_code, role=body.role, division=body.division_code)
        try:
            with conn.transaction():
                conn.execute(q.INSERT_USER, {**body.model_dump(exclude={"password"}),
                                             "password_hash": hash_password(body.password)})
        except psycopg.errors.UniqueViolation:
            raise HTTPException(409, detail=[{"msg": f"username {body.username} is taken",
                                              "loc": ["body", "username"], "type": "duplicate"}]) from None
        _audit(conn, body.username, user.username, "create", body.model_dump(exclude={"password"}, exclude_none=True))
    return _get_or_404(conn, user.division_code, body.username)


@router.get("/{username}", response_model=UserRead)
def get(username: Username, conn: Conn, user: CurrentUser) -> UserRead:
    return _get_or_404(conn, user.division_code, username)


@router.patch("/{username}", responses=responses(409), response_model=UserRead)
def update(username: Username, body: UserUpdate, conn: Conn, user: CurrentUser) -> UserRead:
    with conn.transaction():
        admins = _lock_administrators(conn)
        current = conn.execute(q.SELECT_USER_FOR_UPDATE, {"scope": user.division_code, "username": username}
                               ).fetchone()
        if current is None:
            raise NotFound(f"no person {username} in your jurisdiction", ["path", "username"])
        patch = body.model_dump(exclude_unset=True)
        reason, password = patch.pop("reason", None), patch.pop("password", None)
        for required in ("role", "division_code"):
            if required in patch and patch[required] is None:
                raise HTTPException(422, detail=[{"msg": f"{required} cannot be cleared", "loc": ["body", required],
                                                  "type": "missing"}])
        before = {k: current[k] for k in ("role", "division_code", "display_name")}
        after = {**before, **patch}
        _keep_an_administrator(admins, current, role_after=after["role"])
        _check_binding(conn, scope=user.division_code, role=after["role"], division=after["division_code"])
        diff = changes(before, after)
        if password:
            diff["password"] = ["(changed)", "(changed)"]  # never the hash itself
        if diff:
            conn.execute(q.UPDATE_USER, {**after, "id": current["id"],
                                         "password_hash": hash_password(password) if password else None})
            _audit(conn, username, user.username, "update", {**diff, **({"reason": reason} if reason else {})})
    return _get_or_404(conn, user.division_code, username)


@router.post("/{username}/retire", responses=responses(409), response_model=UserRead)
def retire(username: Username, body: RetireUser, conn: Conn, user: CurrentUser) -> UserRead:
    """Retire a person: they can no longer log in, and their tokens stop working within a second."""
    if username == user.username:
        raise HTTPException(409, detail=[{"msg": "you cannot retire yourself; ask another administrator",
                                          "loc": ["path", "username"], "type": "self"}])
    with conn.transaction():
        admins = _lock_administrators(conn)
        current = conn.execute(q.SELECT_USER_FOR_UPDATE, {"scope": user.division_code, "username": username}
                               ).fetchone()
        if current is None:
            raise NotFound(f"no person {username} in your jurisdiction", ["path", "username"])
        _keep_an_administrator(admins, current, role_after=None)
        if current["retired_at"] is not None:
            raise HTTPException(409, detail=[{"msg": f"{username} is already retired", "loc": ["path", "username"],
                                              "type": "retired"}])
        conn.execute(q.RETIRE_USER, (current["id"],))
        _audit(conn, username, user.username, "retire", {"reason": body.reason})
    return _get_or_404(conn, user.division_code, username)
