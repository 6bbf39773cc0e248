"""THE schema: numbered plain-SQL migrations, applied by `safewatch.schema.migrate.migrate`.

``NNN_name.sql`` applies everywhere; ``NNN_name.timescale.sql`` / ``NNN_name.plain.sql`` are the
two variants of one step, chosen once per database by whether TimescaleDB can be created there.
"""
