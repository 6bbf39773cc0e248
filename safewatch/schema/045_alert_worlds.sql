-- Two worlds of alerts (issue 25): hazards (telemetry, events, anomalies, a gateway offline) go to the
-- feed and the emergency console and escalate in minutes; supervision matters (an overdue periodic
-- inspection, a missing or expired use registration: rule kind 'inspection') go to a worklist per
-- jurisdiction with due dates and escalate on their own slow policy. The rule kind decides, once, here.
ALTER TABLE alerts
    ADD COLUMN world text NOT NULL GENERATED ALWAYS AS (
        CASE WHEN kind = 'inspection' THEN 'supervision' ELSE 'hazard' END) STORED;

-- The feed's default order on open alerts: most severe, then unacknowledged, then newest (the API's
-- keyset cursor walks this index).
CREATE INDEX alerts_open_priority_idx ON alerts (
    world, array_position(ARRAY['critical', 'major', 'minor', 'warning'], severity),
    (state NOT IN ('active_unack', 'returned_unack')), opened_at DESC, id DESC)
    WHERE closed_at IS NULL;

-- Supervision's own policies, in the shape of escalation_policies (which stay the hazards'): paperwork is
-- the banner's to chase, with a week to act on it before the league hears, re-sent daily; it never
-- reaches the region (and never the emergency console). Edited in SQL for now (no API yet).
CREATE TABLE supervision_escalation_policies (LIKE escalation_policies INCLUDING ALL);
INSERT INTO supervision_escalation_policies (severity, category, open_levels, max_level, banner_ack_s,
                                             league_ack_s, renotify_s)
VALUES ('critical', NULL, ARRAY['banner'], 'league', 604800, 604800, 86400),
       ('major', NULL, ARRAY['banner'], 'league', 604800, 604800, 86400),
       ('minor', NULL, ARRAY['banner'], 'league', 604800, 604800, 86400),
       ('warning', NULL, ARRAY['banner'], 'banner', 604800, 604800, NULL);
