-- Alerts about SafeWatch itself, not about equipment (issue 22): a TimescaleDB background job that
-- fails (its rollups, compression or retention silently stop) is the first. The equipment alerts
-- (004) need an equipment and a banner; these have neither, so they live apart: one open row per
-- (source, key), re-seen while the fault lasts, closed when it clears, kept as history after.
-- Region inspectors and administrators see them (GET /api/v1/system/alerts).
CREATE TABLE system_alerts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text NOT NULL,                 -- what watches: 'timescale_jobs'
    key          text NOT NULL,                 -- what is faulty, within the source (a job's kind)
    severity     text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    message      text NOT NULL,                 -- what happened and what to do
    details      jsonb NOT NULL DEFAULT '{}',
    opened_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    cleared_at   timestamptz
);
CREATE UNIQUE INDEX system_alerts_one_open_idx ON system_alerts (source, key) WHERE cleared_at IS NULL;
CREATE INDEX system_alerts_opened_idx ON system_alerts (opened_at DESC);
