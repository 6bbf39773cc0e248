"""Ingest workers: MQTT (QoS 1, manual ack) → decode and validate once → batched COPY into PostgreSQL."""
