"""Signed access tokens (JWT, HS256) carrying the user's id, role, division and token version.

The token version is the person's ``users.token_version`` when the token was issued: a request is
admitted only while it is still the current one (`api.auth.revocation`), so a change of role, division
or password, a retirement or a logout ends every token issued before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: their role and the division their jurisdiction covers."""

    user_id: int
    username: str
    role: str
    division_code: str
    token_version: int = 0


def issue_token(principal: Principal, *, secret: str, ttl_s: int, now: float | None = None) -> str:
    now = time.time() if now is None else now
    claims = {"sub": str(principal.user_id), "name": principal.username, "role": principal.role,
              "div": principal.division_code, "ver": principal.token_version, "iat": int(now), "exp": int(now + ttl_s)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(token: str, *, secret: str) -> Principal:
    """Decode and verify; raises `jwt.InvalidTokenError` when forged, malformed or expired."""
    claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    return Principal(int(claims["sub"]), str(claims["name"]), str(claims["role"]), str(claims["div"]),
                     int(claims.get("ver", -1)))
