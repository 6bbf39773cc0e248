-- GET /equipment?sort=next_inspection_on pages by (coalesce(next_inspection_on, 'infinity'), id), the
-- total order its keyset cursor needs. bench/registry measured that sort as the slow part of a page on
-- 200,000 equipment without this index (a top-N sort of every row in scope; figures: docs/registry.md).
CREATE INDEX equipment_next_inspection_key_idx
    ON equipment ((coalesce(next_inspection_on, 'infinity'::date)), id);
