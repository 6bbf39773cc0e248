-- Response-time record per alert (issue 7): opened, first notified, acknowledged, resolved.
-- A view, not a table: each moment is already recorded once where it happens.

CREATE VIEW alert_responses AS
SELECT a.id AS alert_id, a.equipment_id, e.category, a.rule_key, a.severity, a.level,
       a.division_code, a.league_code, a.opened_at, a.committed_at,
       (SELECT min(o.delivered_at) FROM notification_alerts na JOIN outbox o ON o.id = na.outbox_id
        WHERE na.alert_id = a.id) AS first_notified_at,
       -- A person's first action out of an unacknowledged state (the engine never acknowledges).
       (SELECT min(t.at) FROM alert_transitions t
        WHERE t.alert_id = a.id AND t.actor <> 'engine' AND t.from_state IN ('active_unack', 'returned_unack')
       ) AS acknowledged_at,
       a.closed_at AS resolved_at
FROM alerts a JOIN equipment e ON e.id = a.equipment_id;
