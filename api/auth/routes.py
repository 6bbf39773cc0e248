"""Log in (OAuth2 password flow) and who-am-I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.auth.passwords import verify_password
from api.auth.tokens import Principal, issue_token
from api.deps import Conn, CurrentUser

router = APIRouter(prefix="/api/v1", tags=["auth"])

SELECT_USER_BY_NAME = """
SELECT id, username, password_hash, role, division_code FROM users WHERE username = %s AND retired_at IS NULL
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


@router.post("/auth/token", response_model=Token)
def login(request: Request, conn: Conn, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    row = conn.execute(SELECT_USER_BY_NAME, (form.username,)).fetchone()
    if row is None or not verify_password(row["password_hash"], form.password):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password",
                            headers={"WWW-Authenticate": "Bearer"})
    ttl = request.app.state.settings.api.token_ttl_s
    principal = Principal(row["id"], row["username"], row["role"], row["division_code"])
    return Token(access_token=issue_token(principal, secret=request.app.state.jwt_secret, ttl_s=ttl), expires_in=ttl)


@router.get("/me", response_model=Me)
def me(user: CurrentUser) -> Me:
    return Me(user_id=user.user_id, username=user.username, role=user.role, division_code=user.division_code)
