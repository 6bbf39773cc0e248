-- The alert engine's checkpoint writes an anomaly detector's bit tables (3 KB a metric) whole only now
-- and then; in between, each checkpoint appends the bytes a reading changed in them (5 bytes each: the
-- offset, then the bits set there, which are only ever set, so the marks apply in any order). Whole tables
-- reset the marks. See docs/decisions/alert-checkpoints.md.
ALTER TABLE alert_engine_state ADD COLUMN table_marks bytea;
