"""The registry model shared by the API, the CLI, ingest and alerts: divisions, codes, seeding."""
