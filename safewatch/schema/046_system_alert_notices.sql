-- System alerts reach people (issue 22): the work the notifier must do when a system alert (041) opens
-- or clears, written by a trigger in the writer's own transaction, as 020 does for equipment alerts.
-- One row per (system alert, opened | cleared): a repeated write inserts nothing, so each is told once,
-- whichever notifier or restart gets to it; the notifier sets fired_at in the transaction that writes
-- its outbox rows.
CREATE TABLE system_alert_notices (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    system_alert_id bigint NOT NULL REFERENCES system_alerts (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('opened', 'cleared')),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    fired_at        timestamptz,
    outcome         text,
    UNIQUE (system_alert_id, kind)
);
CREATE INDEX system_alert_notices_due_idx ON system_alert_notices (id) WHERE fired_at IS NULL;

-- A notification about a system alert names it here (alert_id stays NULL: there is no equipment alert).
ALTER TABLE outbox ADD COLUMN system_alert_id bigint REFERENCES system_alerts (id) ON DELETE CASCADE;
CREATE INDEX outbox_system_alert_idx ON outbox (system_alert_id) WHERE system_alert_id IS NOT NULL;

-- Kept minimal: it runs in the ingest's housekeeping transaction; what to send, and to whom, is decided
-- by the notifier (alerts/system_notices.py).
CREATE FUNCTION system_alert_notice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO system_alert_notices (system_alert_id, kind) VALUES (NEW.id, 'opened')
        ON CONFLICT DO NOTHING;
        IF NEW.cleared_at IS NOT NULL THEN  -- written already closed: it opened and cleared
            INSERT INTO system_alert_notices (system_alert_id, kind) VALUES (NEW.id, 'cleared')
            ON CONFLICT DO NOTHING;
        END IF;
    ELSIF OLD.cleared_at IS NULL AND NEW.cleared_at IS NOT NULL THEN
        INSERT INTO system_alert_notices (system_alert_id, kind) VALUES (NEW.id, 'cleared')
        ON CONFLICT DO NOTHING;
    ELSE
        RETURN NULL;  -- re-seen while the fault lasts: nothing new to tell
    END IF;
    PERFORM pg_notify('safewatch_timers', 'system:' || NEW.id);  -- delivered at commit: wakes the notifier
    RETURN NULL;
END
$$;
CREATE TRIGGER system_alerts_notice AFTER INSERT OR UPDATE OF cleared_at ON system_alerts
    FOR EACH ROW EXECUTE FUNCTION system_alert_notice();
