-- Delivery through the outbox (issue 7): grouping, claims, expiry, every attempt logged, and which
-- alerts each notification carried.

ALTER TABLE outbox
    ADD COLUMN group_key     text,         -- notifications of one site and status are grouped
    ADD COLUMN claimed_until timestamptz,  -- a sender is delivering it (a crashed sender's claim lapses)
    ADD COLUMN expired_at    timestamptz;  -- given up: expires_at passed before delivery
CREATE INDEX outbox_due_idx ON outbox (due_at, id) WHERE delivered_at IS NULL AND expired_at IS NULL;
CREATE INDEX outbox_group_idx ON outbox (channel, target, group_key, created_at DESC) WHERE group_key IS NOT NULL;
CREATE INDEX outbox_alert_idx ON outbox (alert_id);

CREATE TABLE outbox_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id   bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempt     integer NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'expired')),
    duration_ms double precision,
    error       text
);
CREATE INDEX outbox_attempts_outbox_idx ON outbox_attempts (outbox_id, id);

-- One grouped notification carries many alerts; each alert knows which notifications named it.
CREATE TABLE notification_alerts (
    outbox_id bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    alert_id  bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    level     text NOT NULL CHECK (level IN ('banner', 'league', 'region')),
    PRIMARY KEY (outbox_id, alert_id)
);
CREATE INDEX notification_alerts_alert_idx ON notification_alerts (alert_id);
