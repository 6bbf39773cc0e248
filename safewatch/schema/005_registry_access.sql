-- Registry completeness and access control (issue 3): what 001 lacked for create/update/retire,
-- search, the audit of every registry change, and retiring people, units and gateways.

-- Equipment: the 6-digit 电梯救援识别码 on elevator car plates, and when it left service.
-- Status scrapped or cancelled is the retirement; retired_at records when.
ALTER TABLE equipment
    ADD COLUMN rescue_code text CHECK (rescue_code ~ '^\d{6}$'),
    ADD COLUMN retired_at  timestamptz;
-- Code form, category/variety agreement and inspection order are checked by the API and the importer
-- (safewatch.registry), which name the field; the table keeps only what must never be violated.

-- Filters and sorts of GET /equipment that a dashboard uses on every page.
CREATE INDEX equipment_unit_idx ON equipment (unit_id);
CREATE INDEX equipment_category_status_idx ON equipment (category, status);
CREATE INDEX equipment_updated_idx ON equipment (updated_at, id);
-- Prefix search on codes and certificate numbers: text_pattern_ops serves LIKE 'abc%' in any collation.
CREATE INDEX equipment_code_prefix_idx ON equipment (code text_pattern_ops);
CREATE INDEX equipment_registration_prefix_idx ON equipment (registration_no text_pattern_ops);

-- Units: retired units stay (equipment history points at them) but take no new equipment.
ALTER TABLE units
    ADD COLUMN retired_at timestamptz,
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX units_division_idx ON units (division_code, id);

-- Unit names are searched by any part (…第3使用单位): trigram GIN where pg_trgm exists (it ships with
-- PostgreSQL's contrib, so nearly always); without it the search still works, by a scan of units.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX units_name_trgm_idx ON units USING gin (name gin_trgm_ops);
    END IF;
END
$$;

-- Gateways: retired gateways lose their broker credentials at the next `safewatch gateways broker-files`.
ALTER TABLE gateways
    ADD COLUMN retired_at  timestamptz,
    ADD COLUMN updated_at  timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN credentials_rotated_at timestamptz;
CREATE INDEX gateways_league_idx ON gateways (league_code, id);

-- People: retired people cannot log in; their rows stay for the audit trails that name them.
ALTER TABLE users
    ADD COLUMN retired_at timestamptz,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- Audit of every change to units, gateways and people (equipment has equipment_audit since 001).
CREATE TABLE registry_audit (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity  text NOT NULL CHECK (entity IN ('unit', 'gateway', 'user')),
    key     text NOT NULL,                 -- USCC, gateway id or username
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor   text NOT NULL,
    action  text NOT NULL,
    changes jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX registry_audit_key_idx ON registry_audit (entity, key, id);
CREATE INDEX equipment_audit_actor_idx ON equipment_audit (actor, at);
