-- Escalation (issue 7): policies as data, routing quirks, timers in the database, the escalation audit,
-- and the trigger that records, in the alert's own transaction, the work the notifier must do.

-- One policy per (severity, category); category NULL is the severity's default for every category.
CREATE TABLE escalation_policies (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    severity     text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    category     text CHECK (category ~ '^[0-9A-Z]{4}$'),
    -- Levels notified the moment the alert opens (大案要案: critical reaches league and region at once).
    open_levels  text[] NOT NULL CHECK (cardinality(open_levels) >= 1
                                        AND open_levels <@ ARRAY['banner', 'league', 'region']),
    -- The highest level the alert may climb to while nobody acknowledges it.
    max_level    text NOT NULL CHECK (max_level IN ('banner', 'league', 'region')),
    -- Seconds the banner (league) has to acknowledge before the alert climbs to the league (region).
    banner_ack_s integer NOT NULL CHECK (banner_ack_s > 0),
    league_ack_s integer NOT NULL CHECK (league_ack_s > 0),
    -- Re-send to every level notified so far this often while unacknowledged; NULL: never.
    renotify_s   integer CHECK (renotify_s > 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text NOT NULL DEFAULT 'migration'
);
CREATE UNIQUE INDEX escalation_policies_key_idx ON escalation_policies (severity, coalesce(category, ''));

-- Defaults (issue 7): critical → banner, league and region at once; major starts at the banner and
-- climbs; minor and warning stay at the banner. Times are starting values, editable through the API.
INSERT INTO escalation_policies (severity, category, open_levels, max_level, banner_ack_s, league_ack_s, renotify_s)
VALUES ('critical', NULL, ARRAY['banner', 'league', 'region'], 'region', 300, 300, 300),
       ('major', NULL, ARRAY['banner'], 'region', 900, 1800, 900),
       ('minor', NULL, ARRAY['banner'], 'banner', 3600, 3600, 3600),
       ('warning', NULL, ARRAY['banner'], 'banner', 3600, 3600, NULL);

-- County-level cities with some prefecture-level powers (DOMAIN.md): notifying them also notifies
-- their parent league. No foreign key: divisions are loaded after the migrations.
CREATE TABLE division_routing (
    division_code text PRIMARY KEY CHECK (division_code ~ '^\d{6}$'),
    also_notify_parent boolean NOT NULL DEFAULT true,
    note text NOT NULL
);
INSERT INTO division_routing (division_code, note)
VALUES ('150781', '满洲里市: county-level city with prefecture-level powers; notify it and 呼伦贝尔市'),
       ('152501', '二连浩特市: county-level city with prefecture-level powers; notify it and 锡林郭勒盟');

-- Work for the notifier, due at a time: 'open' and 'resolve' are written by the trigger below in the
-- alert's transaction; 'climb' and 'renotify' by the notifier when it fires the previous one.
-- A timer fires once: the notifier sets fired_at in the transaction that writes its notifications.
CREATE TABLE escalation_timers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id     bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('open', 'climb', 'renotify', 'resolve')),
    level        text CHECK (level IN ('banner', 'league', 'region')),  -- climb: the level climbed to
    due_at       timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    fired_at     timestamptz,
    cancelled_at timestamptz,
    outcome      text
);
CREATE INDEX escalation_timers_due_idx ON escalation_timers (due_at, id)
    WHERE fired_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX escalation_timers_alert_idx ON escalation_timers (alert_id);

-- The audit of alerts.level: every climb (and the levels set at opening), who, when, why.
CREATE TABLE alert_escalations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    from_level      text CHECK (from_level IN ('banner', 'league', 'region')),
    to_level        text NOT NULL CHECK (to_level IN ('banner', 'league', 'region')),
    notified_levels text[] NOT NULL,
    actor           text NOT NULL,
    reason          text NOT NULL
);
CREATE INDEX alert_escalations_alert_idx ON alert_escalations (alert_id, id);

-- Opening → an 'open' timer due now; acknowledge, resolve, shelve … → pending climbs and re-notifications
-- cancelled; closing → a 'resolve' timer. Kept minimal on purpose: it runs inside the alert
-- engine's transaction, and every decision stays in Python (alerts/escalation/).
CREATE FUNCTION escalation_on_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.from_state IS NULL THEN
        INSERT INTO escalation_timers (alert_id, kind, due_at) VALUES (NEW.alert_id, 'open', clock_timestamp());
    ELSIF NEW.to_state IN ('active_ack', 'normal', 'shelved', 'suppressed', 'out_of_service') THEN
        UPDATE escalation_timers SET cancelled_at = clock_timestamp(), outcome = 'cancelled: ' || NEW.to_state
        WHERE alert_id = NEW.alert_id AND fired_at IS NULL AND cancelled_at IS NULL
          AND kind IN ('climb', 'renotify');
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
CREATE TRIGGER alert_transitions_escalation AFTER INSERT ON alert_transitions
    FOR EACH ROW EXECUTE FUNCTION escalation_on_transition();
