-- Recipients (issue 7): on-duty contacts and emergency teams per division, with channels per person.

CREATE TABLE contacts (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    division_code text NOT NULL REFERENCES divisions (code),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind          text NOT NULL CHECK (kind IN ('duty_officer', 'inspector', 'emergency_team', 'maintenance')),
    on_duty       boolean NOT NULL DEFAULT true,
    -- Equipment categories this contact handles (an elevator rescue team: {3000}); NULL: all.
    categories    text[],
    -- The least severe alert this contact wants.
    min_severity  text NOT NULL DEFAULT 'warning' CHECK (min_severity IN ('critical', 'major', 'minor', 'warning')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_division_idx ON contacts (division_code) WHERE on_duty;

CREATE TABLE contact_channels (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id integer NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    channel    text NOT NULL CHECK (channel IN ('webhook', 'sms', 'email')),
    address    text NOT NULL CHECK (length(address) BETWEEN 3 AND 2000),  -- URL, or e-mail address
    -- sms: the gateway's request body, with {placeholders} (see alerts/notifiers/render.py).
    template   text,
    UNIQUE (contact_id, channel, address)
);
