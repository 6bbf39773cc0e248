-- Trapped-passenger arrival deadlines (DOMAIN.md, Elevators; TSG T5002, check): the maintenance unit must
-- arrive within 30 min in cities with districts and 1 h elsewhere. Per division, as data: NULL inherits
-- from the league, then the region; the effective value is resolved where alerts are read.
ALTER TABLE divisions
    ADD COLUMN arrival_deadline_min        integer CHECK (arrival_deadline_min > 0),
    ADD COLUMN arrival_deadline_updated_by text,
    ADD COLUMN arrival_deadline_updated_at timestamptz;

-- Default data: 60 at the region (inherited by the leagues 兴安盟, 锡林郭勒盟, 阿拉善盟, by banners
-- and by county-level cities); 30 for the districts (市辖区, name ending in 区) of a
-- prefecture-level city (a league whose name ends in 市: 1501xx–1509xx in Inner Mongolia).
CREATE FUNCTION divisions_default_arrival_deadline(level text, name text, league_code text) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN level = 'region' THEN 60
        WHEN level = 'banner' AND name LIKE '%区'
             AND EXISTS (SELECT 1 FROM divisions l WHERE l.code = league_code AND l.name LIKE '%市') THEN 30
    END
$$;

-- Divisions are loaded after the migrations (safewatch load-divisions), so new rows get their default
-- on insert; re-loading (an upsert that leaves this column alone) keeps what was set through the API.
CREATE FUNCTION divisions_arrival_deadline_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.arrival_deadline_min := divisions_default_arrival_deadline(NEW.level, NEW.name, NEW.league_code);
    IF NEW.arrival_deadline_min IS NOT NULL THEN
        NEW.arrival_deadline_updated_by := 'default';
        NEW.arrival_deadline_updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER divisions_arrival_deadline_default BEFORE INSERT ON divisions
    FOR EACH ROW WHEN (NEW.arrival_deadline_min IS NULL) EXECUTE FUNCTION divisions_arrival_deadline_on_insert();

-- Databases that already hold divisions get the same defaults now.
UPDATE divisions SET arrival_deadline_min = divisions_default_arrival_deadline(level, name, league_code),
                     arrival_deadline_updated_by = 'default', arrival_deadline_updated_at = now()
WHERE divisions_default_arrival_deadline(level, name, league_code) IS NOT NULL;
