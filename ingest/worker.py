"""The ingest worker: a loop that receives and assembles, committers that write, commit and only then ack.

Failures are classified (docs/mqtt-contract.md, "What a gateway sees when something fails"):
- an input fault, the fault of one message: the contract rejects it and it is dead-lettered once (its
  raw bytes, its reasons), acknowledged and counted. Should the database still refuse a batch
  (`is_input_fault`), the batch is written again message by message and the one refused is
  dead-lettered whole (reason ``refused_by_database``): one message never ends the process nor holds
  the others back;
- an infrastructure fault (the database unreachable): nothing is acknowledged and the write is
  retried with back-off; the outage is logged once and its recovery once.
Anything else is a bug of ours and ends the process, unacknowledged: the broker redelivers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import psycopg
from prometheus_client import REGISTRY, CollectorRegistry

from ingest.ack_order import AckOrder
from ingest.batching import Batch, RawMessage, bind, codes_of, decode, refused_by_database
from ingest.buffers import check_buffers
from ingest.metrics import IngestMetrics
from ingest.registry_cache import RegistryCache
from ingest.rollups import drop_old_partitions, refresh_rollups
from ingest.timescale_jobs import JobMetrics, check_timescale_jobs
from ingest.writer import Written, ensure_partitions, prepare, write_counted
from safewatch.contract import Limits, device_filter, shared_filter
from safewatch.db import connect
from safewatch.metrics_server import serve_process_metrics
from safewatch.mqtt import Delivery, Subscriber
from safewatch.retry import backoff
from safewatch.runtime import settle_heap
from safewatch.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

PARTITION_CHECK_S = 3600.0

# Errors that some message of the batch caused, not the database's state: splitting the batch finds it.
# Class 54 (program limit exceeded: an index row or a statement too large) is an OperationalError
# in psycopg's tree, and would otherwise be retried for ever; Python-side errors are raised while
# adapting a value (a lone surrogate cannot be encoded, orjson refuses to serialise a document).
_INPUT_FAULTS: tuple[type[BaseException], ...] = (
    psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded,
    ValueError, TypeError, OverflowError)


def is_input_fault(exc: BaseException) -> bool:
    """Whether ``exc``, raised writing a batch, is the fault of some message in it (not of the database)."""
    return isinstance(exc, _INPUT_FAULTS)


class Assembled(NamedTuple):
    """A batch ready to write, and its messages (to write it again message by message, decoded anew:
    keeping them decoded would hold every refused entry of the batch until its commit)."""

    batch: Batch
    messages: list[RawMessage]
    limits: Limits


class DatabaseLink:
    """One connection that reconnects with back-off, interruptibly, and never gives up while running."""

    def __init__(self, url: str, stop: threading.Event, metrics: IngestMetrics) -> None:
        self._url, self._stop, self._metrics = url, stop, metrics
        self.conn: psycopg.Connection | None = None
        self.plain = False  # plain PostgreSQL: the service maintains the rollups
        self._down_since: float | None = None

    def run(self, action: str, fn: Callable[..., T]) -> T | None:
        """Run ``fn(conn)`` until it succeeds; None if stopped first.

        ``fn`` is typed ``Callable[..., T]`` so that a caller may bind its batch as a lambda's default argument.
        """
        delays = backoff()
        while True:  # one try even when stopping: a batch in hand is finished if the database is up
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = connect(self._url)
                    self.plain = prepare(self.conn)
                result = fn(self.conn)
            except psycopg.OperationalError as exc:
                if is_input_fault(exc):
                    raise  # not the database's state: the caller isolates the message
                self._metrics.db_retries.inc()
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.error("database unavailable; holding acks and retrying with back-off",
                              extra={"action": action, "error": str(exc).strip()[:200]})
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                if self._stop.wait(next(delays)):
                    return None
                continue
            if self._down_since is not None:
                log.info("database recovered", extra={"down_s": round(time.monotonic() - self._down_since, 1)})
                self._down_since = None
            return result


def run(settings: Settings, *, stop: threading.Event | None = None,
        registry: CollectorRegistry = REGISTRY, ready: threading.Event | None = None) -> None:
    """Run an ingest worker until ``stop`` is set (SIGTERM/SIGINT in the CLI)."""
    stop = stop or threading.Event()
    cfg = settings.ingest
    metrics = IngestMetrics(registry)
    if cfg.metrics_port and registry is REGISTRY:
        serve_process_metrics(settings, "ingest")
    topic_filter = device_filter()
    if settings.mqtt.shared_subscriptions and settings.mqtt.protocol5:
        topic_filter = shared_filter(cfg.share_group, topic_filter)
    writers = [DatabaseLink(settings.db.url, stop, metrics) for _ in range(cfg.committers)]
    lookups = DatabaseLink(settings.db.url, stop, metrics)  # the decoding loop's registry lookups
    cache = RegistryCache()
    # Upkeep has its own connection and thread: recomputing a minute of rollups reads every reading of
    # that minute (seconds, at full rate), and the batch loop must not stand still meanwhile.
    housekeeping = Housekeeping(DatabaseLink(settings.db.url, stop, metrics), cfg.rollup_interval_s, stop, registry)
    housekeeping.partitions()  # before the first write: today's partition must exist
    for link in writers:  # connected (and prepared) before the first batch arrives
        link.run("connect", lambda conn: None)
    lookups.run("connect", lambda conn: None)
    settle_heap()
    subscriber = Subscriber(settings.mqtt, client_id=f"safewatch-{cfg.worker_id}", topic_filters=[topic_filter],
                            max_inflight=cfg.max_inflight, max_inflight_bytes=cfg.max_inflight_bytes,
                            protocol5=settings.mqtt.protocol5)
    # Read at scrape time, so they stay true while the loop is held up by a database outage.
    metrics.unacked.set_function(lambda: subscriber.unacked()[0])
    metrics.unacked_bytes.set_function(lambda: subscriber.unacked()[1])
    metrics.queue_depth.set_function(subscriber.queued)
    housekeeping.start()
    committers = Committers(writers, subscriber, metrics, cache)
    committers.start()
    with subscriber:
        log.info("ingest worker started", extra={"worker": cfg.worker_id, "filter": topic_filter,
                                                 "max_inflight": cfg.max_inflight,
                                                 "max_inflight_bytes": cfg.max_inflight_bytes})
        while not stop.is_set():
            if ready is not None and not ready.is_set() and subscriber.subscribed.is_set():
                ready.set()
            deliveries = subscriber.get_batch(cfg.batch_max_messages, cfg.batch_max_ms / 1000, cfg.batch_max_bytes)
            if not deliveries:
                continue
            assembled = _assemble(deliveries, settings, lookups, cache)
            if assembled is None or not committers.hand(deliveries, assembled):
                break  # stopped during a database outage: nothing more acked, the broker redelivers
        committers.finish()  # the batches in hand are written and acked (or, the database down, left unacked)
        log.info("ingest worker stopped", extra={"worker": cfg.worker_id})
    housekeeping.join()
    if lookups.conn is not None:
        lookups.conn.close()


class Committers:
    """Threads that write, commit and then ack the assembled batches, while the loop decodes the next one.

    Decoding is CPU and a commit is mostly waiting on PostgreSQL, which works on one batch per
    connection at a time: each thread has its own connection, so one batch's COPY need not wait behind
    another's. One batch waits for a free thread at most (a queue of one), so memory stays within the
    in-flight window. Batches may commit in any order; they are acked in the order they were received
    (`AckOrder`: MQTT wants PUBACKs in order), so a batch committed behind an older one still being
    written waits for it, and if that one never commits (stopped during an outage) neither is acked.
    """

    def __init__(self, links: list[DatabaseLink], subscriber: Subscriber, metrics: IngestMetrics,
                 registry: RegistryCache) -> None:
        self._subscriber, self._metrics, self._registry = subscriber, metrics, registry
        self._queue: queue.Queue[tuple[int, list[Delivery], Assembled] | None] = queue.Queue(maxsize=1)
        self._order: AckOrder[list[Delivery]] = AckOrder()
        self._acking = threading.Lock()
        self._failed = threading.Event()
        self._error: BaseException | None = None
        self._threads = [threading.Thread(target=self._write, args=(link,), name=f"ingest-committer-{i}",
                                          daemon=True) for i, link in enumerate(links)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def hand(self, deliveries: list[Delivery], batch: Assembled) -> bool:
        """Queue a batch, waiting while every thread is busy; False once writing has stopped."""
        with self._acking:
            number = self._order.issue()
        return self._put((number, deliveries, batch))

    def finish(self) -> None:
        """Write what is queued, then end the threads; an error one met is raised here, in the worker's thread."""
        for _ in self._threads:
            if not self._put(None):  # a thread has stopped writing: the others stop too
                break
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error

    def _put(self, item: tuple[int, list[Delivery], Assembled] | None) -> bool:
        """Queue ``item``, waiting for room; False once writing has stopped."""
        while not self._failed.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _take(self) -> tuple[int, list[Delivery], Assembled] | None:
        """The next batch to write; None at the end, or once another thread has stopped writing."""
        while not self._failed.is_set():
            try:
                return self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _write(self, db: DatabaseLink) -> None:
        try:
            while (item := self._take()) is not None:
                number, deliveries, batch = item
                if not _commit(batch, len(deliveries), db, self._metrics, self._registry):
                    self._failed.set()  # stopped during a database outage: nothing more acked, the broker redelivers
                    return
                with self._acking:  # acks go out in receive order, one thread at a time
                    for due in self._order.committed(number, deliveries):
                        self._subscriber.ack(due)
                        self._metrics.messages_stored.inc(len(due))
        except BaseException as exc:  # handed to the worker's thread, which stops the process with it
            self._error = exc
            self._failed.set()
        finally:
            if db.conn is not None:
                db.conn.close()


class Housekeeping(threading.Thread):
    """Partitions, retention and (plain PostgreSQL) rollups, on a thread and connection of their own.

    On TimescaleDB, whose jobs do that upkeep, it watches them instead (ingest/timescale_jobs.py) and
    rolls up the readings written older than their refresh policies reach (ingest/rollups.py).
    """

    def __init__(self, db: DatabaseLink, rollup_interval_s: float, stop: threading.Event,
                 registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__(name="ingest-housekeeping", daemon=True)
        self._db, self._halt = db, stop  # not `_stop`: threading.Thread has a method of that name
        self._rollup_interval_s = rollup_interval_s
        self._next_partitions = 0.0
        self._jobs = JobMetrics(registry)
        self._jobs_failing: frozenset[str] = frozenset()

    def partitions(self) -> None:
        """Partitions ahead, retention, and (hourly, as the registry grows) whether the buffers still fit."""
        self._db.run("partitions", ensure_partitions)
        self._db.run("shared buffers", check_buffers)
        dropped = self._db.run("retention", drop_old_partitions)
        if dropped:
            log.info("dropped reading partitions past retention", extra={"partitions": dropped})
        self._next_partitions = time.monotonic() + PARTITION_CHECK_S

    def timescale(self) -> None:
        """Watch TimescaleDB's jobs (its policies and our late-rollups job, schema 043, do the upkeep there).

        A refusal of the database's (say, a role without access to TimescaleDB's views) is logged and tried
        again next tick: the upkeep thread must outlive it.
        """
        try:
            health = self._db.run("timescale jobs",
                                  lambda conn: check_timescale_jobs(conn, self._jobs, self._jobs_failing))
            if health is not None:
                self._jobs_failing = frozenset(health.alerts)
        except psycopg.Error as exc:
            log.error("TimescaleDB upkeep failed; trying again next tick",
                      extra={"error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"})

    def run(self) -> None:
        while not self._halt.wait(self._rollup_interval_s):
            if time.monotonic() >= self._next_partitions:
                self.partitions()
            if self._db.plain:
                self._db.run("rollups", refresh_rollups)
            else:
                self.timescale()
        if self._db.conn is not None:
            self._db.conn.close()


def _assemble(deliveries: list[Delivery], settings: Settings, lookups: DatabaseLink,
              cache: RegistryCache) -> Assembled | None:
    """Decode and bind a batch (the registry cache refreshed first); None if stopped during an outage."""
    cfg = settings.ingest
    limits = Limits(int(time.time() * 1000), cfg.max_future_s * 1000, cfg.max_past_s * 1000, cfg.max_payload_bytes)
    messages = [RawMessage(d.topic, d.payload) for d in deliveries]
    decoded = decode(messages, limits)
    codes = codes_of(decoded)  # from the decoded messages: each payload is parsed once
    if lookups.run("registry", lambda conn: cache.refresh(conn, codes)) is None and lookups.conn is None:
        return None
    return Assembled(bind(decoded, cache, limits), messages, limits)


def _write(assembled: Assembled, db: DatabaseLink, registry: RegistryCache) -> Written | None:
    """Write one batch; should the database refuse it for some message's sake, message by message.

    None if stopped during a database outage.
    """
    try:
        return db.run("write", lambda conn: write_counted(conn, assembled.batch, mark_rollups=db.plain))
    except Exception as exc:
        if not is_input_fault(exc):
            raise
        first_error = exc
    readings, letters = 0, []
    for m in assembled.messages:
        one = bind(decode([m], assembled.limits), registry, assembled.limits)
        try:
            written = db.run("write", lambda conn, one=one: write_counted(conn, one, mark_rollups=db.plain))
        except Exception as exc:
            if not is_input_fault(exc):
                raise
            error = f"{type(exc).__name__}: {str(exc).strip()}"
            log.error("the database refused a message the contract let through; dead-lettered whole",
                      extra={"topic": m.topic[:200], "error": error[:300]})
            refused = Batch(dead_letters=[refused_by_database(m, error)])
            # Every text of a dead letter is storable: should this fail too, it is not the message's fault.
            written = db.run("dead letter", lambda conn, b=refused: write_counted(conn, b, mark_rollups=False))
        if written is None:
            return None
        readings += written.readings
        letters += written.dead_letters
    log.info("batch written message by message after the database refused it",
             extra={"messages": len(assembled.messages), "error": f"{type(first_error).__name__}"})
    return Written(readings, letters)


def _commit(assembled: Assembled, messages: int, db: DatabaseLink, metrics: IngestMetrics,
            registry: RegistryCache) -> bool:
    """Write and commit one batch, and count it; False if stopped during a database outage."""
    started = time.perf_counter()
    batch = assembled.batch
    written = _write(assembled, db, registry)
    if written is None:
        return False
    stored = written.readings
    committed = time.time()
    metrics.commit_seconds.observe(time.perf_counter() - started)
    metrics.last_commit.set(committed)
    for kind, n in batch.received.items():
        metrics.received.labels(kind=str(kind)).inc(n)
    for dl in written.dead_letters:  # a redelivered message's dead letter is stored, and counted, once
        for reason, n in dl.reasons().items():
            metrics.rejected.labels(reason=reason).inc(n)
    if written.dead_letters:
        first = written.dead_letters[0]
        log.warning("dead-lettered", extra={"count": len(written.dead_letters), "first_reason": first.reason,
                                            "gateway_id": first.gateway_id})
    metrics.readings_received.inc(len(batch.readings))
    metrics.readings_written.inc(stored)
    metrics.readings_duplicate.inc(len(batch.readings) - stored)
    metrics.batch_messages.observe(messages)
    if batch.readings:
        metrics.batch_readings.observe(len(batch.readings))
        newest = max(batch.readings.ts_ms)
        metrics.lag_seconds.observe(max(0.0, committed - newest / 1000))
    return True
