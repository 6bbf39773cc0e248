-- A person's access follows the registry at once (issue 22): every token carries the person's
-- token_version, checked on each request. A change of who they are (role, division, password,
-- retirement) bumps it in the database itself, whoever makes the change (API, CLI, SQL), so tokens
-- issued before stop working; logging out bumps it too.
ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0;

CREATE FUNCTION users_bump_token_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.role IS DISTINCT FROM OLD.role OR NEW.division_code IS DISTINCT FROM OLD.division_code
       OR NEW.password_hash IS DISTINCT FROM OLD.password_hash OR NEW.retired_at IS DISTINCT FROM OLD.retired_at THEN
        NEW.token_version := OLD.token_version + 1;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_token_version BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_bump_token_version();
