"""Log in (OAuth2 password flow, throttled), log out (ends every token of the caller) and who-am-I."""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.auth.passwords import verify_password
from api.auth.revocation import revoke_tokens
from api.auth.throttle import LoginThrottle
from api.auth.tokens import Principal, issue_token
from api.deps import Conn, CurrentUser
from api.errors import responses

router = APIRouter(prefix="/api/v1", tags=["auth"])

SELECT_USER_BY_NAME = """
SELECT id, username, password_hash, role, division_code, token_version FROM users
WHERE username = %s AND retired_at IS NULL
"""


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    user_id: int
    username: str
    role: str
    division_code: str


@router.post("/auth/token", response_model=Token, responses=responses(401, 429))
def login(request: Request, conn: Conn, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    throttle: LoginThrottle = request.app.state.login_throttle
    keys = (f"user:{form.username}", f"addr:{request.client.host if request.client else '-'}")
    now = time.monotonic()
    wait = throttle.retry_after(keys, now)
    if wait > 0:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"too many failed log-ins; try again in {math.ceil(wait)} s",
                            headers={"Retry-After": str(math.ceil(wait))})
    row = conn.execute(SELECT_USER_BY_NAME, (form.username,)).fetchone()
    if row is None or not verify_password(row["password_hash"], form.password):
        throttle.failed(keys, now)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password",
                            headers={"WWW-Authenticate": "Bearer"})
    throttle.succeeded(keys[0])
    ttl = request.app.state.settings.api.token_ttl_s
    principal = Principal(row["id"], row["username"], row["role"], row["division_code"], row["token_version"])
    return Token(access_token=issue_token(principal, secret=request.app.state.jwt_secret, ttl_s=ttl), expires_in=ttl)


@router.post("/auth/logout", status_code=204, response_class=Response)
def logout(request: Request, conn: Conn, user: CurrentUser) -> Response:
    """End every token of the caller, on every device (each API process refuses them within a second)."""
    with conn.transaction():
        revoke_tokens(conn, user.user_id)
    request.app.state.identities.forget(user.user_id)
    return Response(status_code=204)


@router.get("/me", response_model=Me)
def me(user: CurrentUser) -> Me:
    return Me(user_id=user.user_id, username=user.username, role=user.role, division_code=user.division_code)
