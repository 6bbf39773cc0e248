"""FastAPI dependencies as `Annotated` aliases: Conn, CurrentUser, Scope, and role guards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import jwt
import psycopg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from psycopg.rows import DictRow

from api.auth.revocation import is_current
from api.auth.tokens import Principal, read_token

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

ROLES = ("region_inspector", "league_inspector", "banner_inspector", "emergency_responder", "registry_clerk",
         "administrator")
# Who may change what; everyone authenticated may read within their jurisdiction.
WRITE_REGISTRY = ("registry_clerk", "administrator")
HANDLE_ALERTS = ("region_inspector", "league_inspector", "banner_inspector", "emergency_responder", "administrator")


def get_conn(request: Request) -> Iterator[psycopg.Connection[DictRow]]:
    with request.app.state.pool.connection() as conn:
        yield conn


Conn = Annotated[psycopg.Connection[DictRow], Depends(get_conn)]


def current_user(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> Principal:
    # Server-sent events cannot set headers from EventSource, so the dashboard passes ?access_token=.
    token = token or request.query_params.get("access_token")
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first: POST /api/v1/auth/token",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        principal = read_token(token, secret=request.app.state.jwt_secret)
    except jwt.InvalidTokenError:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "token invalid or expired; log in again",
                            headers={"WWW-Authenticate": "Bearer"}) from None
    if not is_current(principal, request.app.state.identities.get(request.app.state.pool, principal.user_id)):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "token revoked: your account changed, was retired or logged out; log in again",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal

CurrentUser = Annotated[Principal, Depends(current_user)]


def require(*roles: str) -> Any:  # FastAPI types a Depends(...) marker as Any
    """A dependency that admits only ``roles``."""

    def guard(user: CurrentUser) -> Principal:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} may not do this; needs one of {roles}")
        return user

    return Depends(guard)


# The SQL test "division row d lies within the caller's jurisdiction %(scope)s".
IN_SCOPE = "(d.code = %(scope)s OR d.league_code = %(scope)s OR d.region_code = %(scope)s)"
