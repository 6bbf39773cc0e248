"""Server-sent events of notifications for dashboards, scoped to the caller's jurisdiction.

``GET /api/v1/stream/notifications`` (``text/event-stream``; EventSource cannot send headers, so pass
the token as ``?access_token=``). The notifier writes one ``sse`` outbox row per notified division
(the same notifications the division's contacts get: opening, each climb, re-notifications,
resolution, grouped per site) and announces it with ``pg_notify('safewatch_notifications', id)``.

Events::

    id: 1234                      ← the notification's id; send it back as Last-Event-ID to resume
    event: notification
    data: {"id": 1234, "created_at": "…", "status": "firing" | "resolved",
           "level": "banner" | "league" | "region",   ← the level this division is told at
           "division_code": "150781",                  ← the notified division (within your jurisdiction)
           "group_key": "gw:gw-0031|firing",           ← site|status: one notification per site and interval
           "alerts": [{"id", "equipment_code", "category", "rule_key", "severity", "state", "level",
                       "division_code", "league_code", "message", "metric", "value", "limit_value",
                       "opened_at", "cleared_at", "closed_at", "gateway_id", "unit_name", "address"}, …]}

    event: ready
    data: {"last_id": 1234 | null}  ← sent once LISTEN is in place and missed notifications are replayed

A client that reconnects with ``Last-Event-ID`` (EventSource does so itself) or ``?after=<id>`` first
gets the delivered notifications after that id (at most 1000), then ``ready``, then live ones.
Alert *state* changes (acknowledged, cleared …) are the dashboard's own stream,
``/api/v1/dashboard/events``.
"""
