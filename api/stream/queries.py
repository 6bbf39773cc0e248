"""SQL of the notification stream: the outbox's ``sse`` rows, within the caller's jurisdiction."""

from __future__ import annotations

from api.deps import IN_SCOPE

_SELECT = "SELECT o.id, o.created_at, o.payload FROM outbox o JOIN divisions d ON d.code = o.target"
SELECT_NOTIFICATION = f"{_SELECT} WHERE o.channel = 'sse' AND o.id = %(id)s AND {IN_SCOPE}"
SELECT_MISSED = f"""
{_SELECT}
WHERE o.channel = 'sse' AND o.id > %(after)s AND o.delivered_at IS NOT NULL AND {IN_SCOPE}
ORDER BY o.id
LIMIT 1000
"""
