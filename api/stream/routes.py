"""The notification stream's endpoint (the event format is in this package's docstring)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
import psycopg
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse

from alerts.notifiers.sse import NOTIFICATIONS_CHANNEL
from api.deps import CurrentUser
from api.stream.queries import SELECT_MISSED, SELECT_NOTIFICATION

router = APIRouter(prefix="/api/v1/stream", tags=["escalation"])
PING_S = 15


def _event(row: tuple[Any, ...]) -> dict[str, str]:
    notification_id, created_at, payload = row
    body = {"id": notification_id, "created_at": created_at.isoformat(),
            **{k: v for k, v in payload.items() if k not in ("template", "receiver")}}
    return {"id": str(notification_id), "event": "notification", "data": orjson.dumps(body).decode()}


async def _pump(listen: psycopg.AsyncConnection, ids: asyncio.Queue[int]) -> None:
    async for n in listen.notifies():
        if n.payload.isdigit():
            await ids.put(int(n.payload))


@router.get("/notifications", response_class=EventSourceResponse)
async def notifications(request: Request, user: CurrentUser,
                        last_event_id: Annotated[str | None, Header(pattern=r"^\d{1,18}$")] = None,
                        after: Annotated[int | None, Query(ge=0, le=2**62, description="resume after this id")] = None,
                        ) -> EventSourceResponse:
    """Notifications to divisions in your jurisdiction, live, resumable by id."""
    start = int(last_event_id) if last_event_id is not None else after
    url = request.app.state.settings.db.url
    scope = user.division_code

    async def stream() -> AsyncIterator[dict[str, str]]:
        # Two connections: one only listens (its notifies() owns it), the other reads rows.
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as listen, \
                await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await listen.execute(f"LISTEN {NOTIFICATIONS_CHANNEL}")
            ids: asyncio.Queue[int] = asyncio.Queue(maxsize=10_000)
            pump = asyncio.create_task(_pump(listen, ids))
            try:
                last = start
                if start is not None:  # LISTEN is already in place: nothing falls between replay and live
                    for row in await (await conn.execute(SELECT_MISSED, {"after": start, "scope": scope})).fetchall():
                        last = row[0]
                        yield _event(row)
                yield {"event": "ready", "data": orjson.dumps({"last_id": last}).decode()}
                while True:
                    notification_id = await ids.get()
                    if last is not None and notification_id <= last:
                        continue  # already replayed
                    cur = await conn.execute(SELECT_NOTIFICATION, {"id": notification_id, "scope": scope})
                    notified = await cur.fetchone()
                    if notified is not None:
                        yield _event(notified)
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    return EventSourceResponse(stream(), ping=PING_S)
