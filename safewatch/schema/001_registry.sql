-- The registry: divisions, user units, gateways, equipment, people. Jurisdiction comes from here.

CREATE TABLE divisions (
    code        text PRIMARY KEY CHECK (code ~ '^\d{6}$'),
    name        text NOT NULL,
    name_en     text,
    parent_code text REFERENCES divisions (code),
    level       text NOT NULL CHECK (level IN ('region', 'league', 'banner')),
    -- Denormalised ancestors so "this division and all under it" is one indexable test.
    league_code text REFERENCES divisions (code),
    region_code text REFERENCES divisions (code)
);
CREATE INDEX divisions_league_idx ON divisions (league_code);

-- 使用单位: the unit using the equipment, identified by its 统一社会信用代码 (GB 32100-2015).
CREATE TABLE units (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uscc           text NOT NULL UNIQUE CHECK (uscc ~ '^[0-9A-HJ-NP-RT-UW-Y]{18}$'),
    name           text NOT NULL,
    division_code  text NOT NULL REFERENCES divisions (code),
    address        text,
    safety_manager text,
    phone          text
);
CREATE INDEX units_name_idx ON units (name);

CREATE TABLE gateways (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    league_code   text NOT NULL REFERENCES divisions (code),
    name          text,
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE equipment (
    id                 integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code               text NOT NULL UNIQUE,          -- 设备代码 (18/19 chars) or legacy 注册代码 (20 digits)
    category           text NOT NULL CHECK (category IN ('1000', '2000', '3000')),
    variety            text NOT NULL,                 -- 品种/类别 code, e.g. 3110
    registration_no    text,                          -- 使用登记证编号
    unit_id            bigint REFERENCES units (id),
    banner_code        text NOT NULL REFERENCES divisions (code),
    lat                double precision CHECK (lat BETWEEN -90 AND 90),
    lon                double precision CHECK (lon BETWEEN -180 AND 180),
    address            text,
    manufacturer       text,
    model              text,
    manufactured_on    date,
    commissioned_on    date,
    rated              jsonb NOT NULL DEFAULT '{}',   -- rated parameters per category (rated_pressure ...)
    status             text NOT NULL DEFAULT 'in_use'
                       CHECK (status IN ('in_use', 'suspended', 'scrapped', 'cancelled')),
    last_inspection_on date,
    next_inspection_on date,
    gateway_id         text REFERENCES gateways (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX equipment_banner_idx ON equipment (banner_code, id);
CREATE INDEX equipment_gateway_idx ON equipment (gateway_id);
CREATE INDEX equipment_next_inspection_idx ON equipment (next_inspection_on);

CREATE TABLE equipment_audit (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    equipment_id integer NOT NULL REFERENCES equipment (id),
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    changes      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX equipment_audit_equipment_idx ON equipment_audit (equipment_id, at);

CREATE TABLE users (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('region_inspector', 'league_inspector', 'banner_inspector',
                                                'emergency_responder', 'registry_clerk', 'administrator')),
    division_code text NOT NULL REFERENCES divisions (code),
    display_name  text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
