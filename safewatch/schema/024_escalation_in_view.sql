-- Escalation follows what people can see (issue 7, with issue 6's shelve/suppress/out-of-service):
-- an alert born suppressed or out of service notifies nobody; one coming back into view unacknowledged
-- (unshelved, unsuppressed, returned to service) starts its escalation again with an 'open' timer.
CREATE OR REPLACE FUNCTION escalation_on_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.to_state = 'active_unack'
       AND (NEW.from_state IS NULL OR NEW.from_state IN ('shelved', 'suppressed', 'out_of_service')) THEN
        INSERT INTO escalation_timers (alert_id, kind, due_at) VALUES (NEW.alert_id, 'open', clock_timestamp());
    ELSIF NEW.from_state IS NOT NULL
          AND NEW.to_state IN ('active_ack', 'normal', 'shelved', 'suppressed', 'out_of_service') THEN
        UPDATE escalation_timers SET cancelled_at = clock_timestamp(), outcome = 'cancelled: ' || NEW.to_state
        WHERE alert_id = NEW.alert_id AND fired_at IS NULL AND cancelled_at IS NULL
          AND kind IN ('open', 'climb', 'renotify')
          AND NOT (kind = 'open' AND NEW.to_state IN ('active_ack', 'normal'));
        -- Resolved: tell whoever heard of it (nobody, if it was never notified: the notifier checks).
        IF NEW.to_state = 'normal' THEN
            INSERT INTO escalation_timers (alert_id, kind, due_at)
            VALUES (NEW.alert_id, 'resolve', clock_timestamp());
        END IF;
    ELSE
        RETURN NULL;
    END IF;
    PERFORM pg_notify('safewatch_timers', NEW.alert_id::text);  -- delivered at commit: wakes the notifier
    RETURN NULL;
END
$$;
