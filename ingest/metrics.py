"""Prometheus metrics of the ingest worker (declared once; the worker updates them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ingest.batching import INGEST_REASONS
from safewatch.contract import CONTRACT_REASONS, Kind


class IngestMetrics:
    """The ingest's metrics in one registry (a private one in tests)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter("safewatch_ingest_messages_received_total", "MQTT messages received",
                                ["kind"], registry=registry)
        self.rejected = Counter("safewatch_ingest_messages_rejected_total",
                                "Messages or entries dead-lettered, by reason", ["reason"], registry=registry)
        self.readings_written = Counter("safewatch_ingest_readings_written_total",
                                        "Readings newly stored (duplicates excluded)", registry=registry)
        self.readings_received = Counter("safewatch_ingest_readings_received_total",
                                         "Valid readings received (before de-duplication)", registry=registry)
        self.readings_duplicate = Counter("safewatch_ingest_readings_duplicate_total",
                                          "Valid readings already stored (redeliveries), not stored again",
                                          registry=registry)
        self.messages_stored = Counter("safewatch_ingest_messages_stored_total",
                                       "Messages committed and acknowledged to the broker", registry=registry)
        self.batch_messages = Histogram("safewatch_ingest_batch_messages", "Messages per committed batch",
                                        buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000), registry=registry)
        self.batch_readings = Histogram("safewatch_ingest_batch_readings", "Readings per committed batch",
                                        buckets=(10, 50, 100, 500, 1000, 5000, 10000, 50000), registry=registry)
        self.commit_seconds = Histogram("safewatch_ingest_commit_duration_seconds", "Time to write and commit a batch",
                                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                        registry=registry)
        self.lag_seconds = Histogram("safewatch_ingest_lag_seconds", "Reading timestamp to commit",
                                     buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                                     registry=registry)
        self.unacked = Gauge("safewatch_ingest_unacked_messages", "Messages received, not yet acknowledged",
                             registry=registry)
        self.unacked_bytes = Gauge("safewatch_ingest_unacked_bytes",
                                   "Payload bytes received, not yet acknowledged (bounded by max_inflight_bytes)",
                                   registry=registry)
        self.queue_depth = Gauge("safewatch_ingest_queue_depth",
                                 "Messages received and waiting for the writer (not yet in a batch)",
                                 registry=registry)
        self.last_commit = Gauge("safewatch_ingest_last_commit_timestamp_seconds", "Unix time of the last commit",
                                 registry=registry)
        self.db_retries = Counter("safewatch_ingest_db_retries_total", "Batch writes retried after a database error",
                                  registry=registry)
        for kind in Kind:
            self.received.labels(kind=str(kind))
        for reason in (*CONTRACT_REASONS, *INGEST_REASONS):
            self.rejected.labels(reason=reason)
