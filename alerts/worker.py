"""The alert worker: its own subscription (sharded by league), the pure engine, then SQL, then ack.

One batch: decode → `Engine.evaluate` (pure engine over event time, once) → one transaction writing
every alert change with its audit row → ack to the broker → keep the engine's new state. A database
outage retries the same computed effects until they commit; nothing is acked before.

Housekeeping (every ``settings.alerts.housekeeping_s`` of wall clock, `housekeeping` with an explicit
``now``): reload equipment and rule overrides, suppress/release alerts of equipment out of service,
end expired shelving, and raise or clear overdue-inspection and registration alerts.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypeVar

import prometheus_client
import psycopg
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from alerts.batch_bound import batch_max_bytes
from alerts.decoding import DecodedBatch, decode_batch
from alerts.engine.anomaly import AnomalyConfig
from alerts.engine.anomaly_bank import FleetDetector
from alerts.engine.checkpoint import ShardCheckpoint, pack_equipment, pack_shard, unpack_equipment, unpack_shard
from alerts.engine.columns import Compiled, QuietColumns, compile_shape
from alerts.engine.defaults import DEFAULT_RULES, ENGINE_ANOMALY
from alerts.engine.inspection import registry_effects
from alerts.engine.nuisance import FloodChange, FloodState, flood_step
from alerts.engine.rules import Condition, Override, Rule, RuleKind, apply_override
from alerts.engine.step import (
    Effect,
    EquipmentState,
    RaiseAlert,
    RuleTable,
    anomaly_metrics,
    anomaly_requests,
    check_silence,
    compile_rules,
    event_effects,
    merge_instants,
    range_fault_effects,
    state_from_plain,
    state_to_plain,
    status_effects,
    step_general,
    step_merged,
)
from alerts.metrics import AlertMetrics
from alerts.store import (
    Applied,
    EquipmentInfo,
    PackedState,
    count_open_alerts,
    expire_shelves,
    load_active_conditions,
    load_checkpoint,
    load_effect_marks,
    load_equipment,
    load_equipment_by_codes,
    load_equipment_of_gateway,
    load_overrides,
    load_registry_facts,
    record_effect_marks,
    record_flood,
    save_checkpoint,
    sync_equipment_status,
    write_effects,
)
from safewatch.contract import (
    ContractError,
    Event,
    GatewayState,
    Limits,
    Rejected,
    TelemetryMessage,
    ValueOutOfRange,
    device_filter,
    parse_timestamp,
)
from safewatch.db import connect
from safewatch.metrics_server import serve_process_metrics
from safewatch.mqtt import Delivery, Subscriber
from safewatch.retry import backoff
from safewatch.runtime import settle_heap
from safewatch.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

_VALUES = itemgetter(1)  # of an instant, (ts_ms, values)
_ENTRY_TS = itemgetter(1)  # of a segment entry, (equipment, ts_ms, values)
SILENCE_TICK_MS = 10_000  # silence is judged each time the shard's event time passes a 10 s boundary


def _later(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None or b < a else b


class _Segment:
    """A run of telemetry the engine decides at once: per equipment, its instants in stream order."""

    def __init__(self) -> None:
        self.per_equipment: dict[int, list[tuple[int, Mapping[str, float]]]] = {}
        self.latest: dict[int, int] = {}  # per equipment, its newest instant here
        self.repeated = False  # an equipment with several instants (else each has one)
        self.newest: int | None = None
        self.evaluated = 0  # readings decided, over every segment of the batch

    def holds_newer(self, entries: list[tuple[int, int, Mapping[str, float]]]) -> bool:
        """Whether an entry is not newer than what the segment holds for its equipment: deciding both at
        once would sort them, where message by message they come in stream order."""
        latest = self.latest
        return bool(latest) and any(eq_id in latest and ts <= latest[eq_id] for eq_id, ts, _ in entries)

    def add(self, entries: list[tuple[int, int, Mapping[str, float]]]) -> int:
        """Add one message's entries; return the segment's newest reading time."""
        per_equipment, latest = self.per_equipment, self.latest
        for eq_id, ts, values in entries:
            instants = per_equipment.get(eq_id)
            if instants is None:
                per_equipment[eq_id] = [(ts, values)]
            else:
                instants.append((ts, values))
                self.repeated = True
        for eq_id, ts, _ in entries:
            known = latest.get(eq_id)
            if known is None or ts > known:
                latest[eq_id] = ts
        newest = max(map(_ENTRY_TS, entries))
        if self.newest is None or newest > self.newest:
            self.newest = newest
        return self.newest

    def clear(self) -> None:
        self.per_equipment = {}
        self.latest = {}
        self.repeated = False
        self.newest = None


class Engine:
    """The worker's in-memory state: equipment it owns, their rules, and one `EquipmentState` each.

    The anomaly detectors of all of them are one `FleetDetector` (the states hold none), so a batch's
    readings are scored together. A settled equipment whose rules fit is a row of `QuietColumns`
    rather than an entry of ``states`` (``columns=False`` keeps every one in ``states``: the reference
    the tests hold the rows to); `state_of` hands its state back.

    Pure apart from holding state: `evaluate` takes decoded deliveries and returns effects; nothing
    here touches the database, the broker or the wall clock.
    """

    def __init__(self, rules: tuple[Rule, ...] = DEFAULT_RULES, *, anomaly: AnomalyConfig = ENGINE_ANOMALY,
                 anomaly_enabled: bool = True, columns: bool = True) -> None:
        self.equipment: dict[int, EquipmentInfo] = {}
        self.by_code: dict[str, EquipmentInfo] = {}
        self.by_gateway: dict[str, set[int]] = defaultdict(set)
        self.rules_by_category: dict[str, list[Rule]] = defaultdict(list)
        for rule in rules:
            if anomaly_enabled or rule.kind is not RuleKind.ANOMALY:
                self.rules_by_category[str(rule.category)].append(rule)
        self.overrides: dict[int, dict[str, Override]] = {}
        self.states: dict[int, EquipmentState] = {}
        self._rules: dict[int, RuleTable] = {}
        self.anomaly = anomaly
        self.detectors = FleetDetector(anomaly)
        self.watermark_ms: int | None = None
        self.floods: dict[str, FloodState] = {}
        self.columns = QuietColumns()
        self._use_columns = columns
        self._compiled: dict[int, Compiled | None] = {}
        # Per equipment, how many effects each rule has had: an effect's ordinal, for writing it once.
        self.emitted: dict[int, dict[str, int]] = {}
        self.dirty: set[int] = set()  # equipment whose state changed since the last checkpoint
        self.checkpointed: set[int] = set()  # equipment whose state came from a checkpoint at start

    # -- registry ---------------------------------------------------------------------------
    def add(self, infos: Iterable[EquipmentInfo]) -> None:
        for info in infos:
            old = self.equipment.get(info.id)
            if old is not None and old.gateway_id:
                self.by_gateway[old.gateway_id].discard(info.id)
            if old is not None and (old.rated != info.rated or old.category != info.category):
                self._forget_rules(info.id)
            self.equipment[info.id] = info
            self.by_code[info.code] = info
            if info.gateway_id:
                self.by_gateway[info.gateway_id].add(info.id)

    def set_overrides(self, overrides: dict[int, dict[str, Override]]) -> None:
        if overrides != self.overrides:
            changed = set(overrides) | set(self.overrides)
            self.overrides = overrides
            for eq_id in changed:
                self._forget_rules(eq_id)

    def _forget_rules(self, eq_id: int) -> None:
        """The equipment's rules changed: recompile them, and its row (compiled from them) is a state again."""
        self._rules.pop(eq_id, None)
        self._compiled.pop(eq_id, None)
        if eq_id in self.columns:
            self.states[eq_id] = self.columns.release(eq_id)

    def table_for(self, eq_id: int) -> RuleTable:
        """The equipment's rules (its category's defaults with its overrides applied), limits resolved."""
        table = self._rules.get(eq_id)
        if table is None:
            info = self.equipment[eq_id]
            mine = self.overrides.get(eq_id, {})
            applied = (apply_override(r, mine.get(r.key)) for r in self.rules_by_category.get(info.category, ()))
            table = compile_rules((r for r in applied if r is not None), info.rated)
            self._rules[eq_id] = table
        return table

    def rules_for(self, eq_id: int) -> tuple[Rule, ...]:
        """The equipment's rules: its category's defaults with its overrides applied."""
        return self.table_for(eq_id).rules

    def state_of(self, eq_id: int) -> EquipmentState:
        state = self.states.get(eq_id)
        if state is None and eq_id in self.columns:
            state = self.states[eq_id] = self.columns.release(eq_id)
        if state is None:
            state = EquipmentState()
            metrics = anomaly_metrics(self.rules_for(eq_id))
            if metrics:
                self.detectors.add(eq_id, metrics)
            self.states[eq_id] = state
        return state

    def restore(self, saved: dict[int, dict[str, Any]]) -> None:
        """Load states saved by a previous worker (`plain_states`); unreadable ones start afresh."""
        for eq_id, plain in saved.items():
            if eq_id not in self.equipment:
                continue
            if eq_id in self.columns:
                self.columns.release(eq_id)
            try:
                state = state_from_plain(plain)
                if state.detector is not None:
                    self.detectors.adopt(eq_id, state.detector)
                    state = replace(state, detector=None)
                self.states[eq_id] = state
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("saved engine state unreadable; starting afresh", extra={"equipment_id": eq_id,
                                                                                    "error": str(exc)[:200]})

    def plain_states(self) -> dict[int, dict[str, Any]]:
        """Every equipment's state as plain data, for `save_engine_states`."""
        plain = {}
        held = [(eq_id, self.columns.peek(eq_id)) for eq_id in self.columns.ids()]
        for eq_id, state in [*self.states.items(), *held]:
            if eq_id in self.detectors:
                state = replace(state, detector=self.detectors.export(eq_id))
            plain[eq_id] = state_to_plain(state)
        return plain

    def restore_active(self, pairs: Iterable[tuple[int, str]]) -> None:
        """Mark conditions whose alert is open and active (after a restart) so they clear, not re-raise.

        Only for equipment the checkpoint does not hold: a checkpointed state is exact, and an open
        alert beside it is one its replay will clear (or the checkpoint knows it already)."""
        for eq_id, rule_key in pairs:
            if eq_id in self.equipment and eq_id not in self.checkpointed:
                state = self.state_of(eq_id)
                known = state.conditions.get(rule_key)
                if known is not None and known.active:
                    continue  # the saved state knows it, with its timing
                self.states[eq_id] = EquipmentState({**state.conditions, rule_key: Condition(active=True)},
                                                    state.windows, state.changes, state.suppressed,
                                                    state.last_seen_ms, state.detector)
                self.dirty.add(eq_id)

    # -- checkpoints ------------------------------------------------------------------------
    def restore_checkpoint(self, equipment: Mapping[int, PackedState], shard: bytes | None,
                           marks: Mapping[int, Mapping[str, int]]) -> tuple[bytes, ...]:
        """Continue exactly from a checkpoint (`checkpoint`: packed state, detector tables and the marks
        written since them, by equipment);
        return the fingerprints of the deliveries it covers. ``marks`` are the ordinals of the effects
        already written, by equipment: `restore_active` leaves those equipment to the replay too."""
        for eq_id, (data, tables, table_marks) in equipment.items():
            if eq_id not in self.equipment:
                continue
            try:
                saved = unpack_equipment(data)
                if eq_id in self.columns:
                    self.columns.release(eq_id)
                self.detectors.discard(eq_id)
                if saved.detector is not None:
                    self.detectors.adopt(eq_id, saved.detector)
                elif saved.banked is not None:
                    self.detectors.restore_banked(eq_id, saved.banked, tables or b"", table_marks or b"")
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("checkpointed engine state unreadable; starting afresh",
                            extra={"equipment_id": eq_id, "error": str(exc)[:200]})
                continue
            self.states[eq_id] = saved.state
            self.emitted[eq_id] = dict(saved.emitted)
            self.checkpointed.add(eq_id)
        # An equipment with effects written (marks) but no checkpointed state was never covered by a
        # checkpoint: every delivery behind those effects is replayed, from its first state, and its effects
        # get the same ordinals again (so they are skipped). It counts from 0 and is left to the replay.
        self.checkpointed.update(eq_id for eq_id in marks if eq_id in self.equipment)
        covered: tuple[bytes, ...] = ()
        if shard is not None:
            try:
                saved_shard = unpack_shard(shard)
                self.watermark_ms = saved_shard.watermark_ms
                self.floods = dict(saved_shard.floods)
                covered = tuple(saved_shard.covered)
            except ValueError as exc:
                log.warning("checkpointed shard state unreadable; event time starts afresh",
                            extra={"error": str(exc)[:200]})
        self.dirty.clear()
        return covered

    def checkpoint(self, covered: Sequence[bytes] = ()) -> tuple[dict[int, PackedState], bytes]:
        """The states changed since the last checkpoint, packed (with their detectors' bit tables whole or the
        bytes of them changed, `FleetDetector.checkpoint`), and the shard's state; forgets them as changed
        (the caller writes them, retrying until they commit)."""
        packed: dict[int, PackedState] = {}
        detectors = self.detectors
        no_counts: dict[str, int] = {}
        dirty = sorted(self.dirty)
        banked = detectors.checkpoint(dirty)
        for eq_id in dirty:
            state = self.states.get(eq_id)
            if state is None:
                if eq_id not in self.columns:
                    continue
                state = self.columns.peek(eq_id)
            emitted = self.emitted.get(eq_id, no_counts)
            found = banked.get(eq_id)
            if found is not None:
                packed[eq_id] = (pack_equipment(state, emitted, banked=found.plain), found.tables, found.marks)
            else:
                detector = detectors.export(eq_id) if eq_id in detectors else state.detector
                packed[eq_id] = (pack_equipment(state, emitted, detector=detector), None, None)
        self.dirty.clear()
        return packed, pack_shard(ShardCheckpoint(self.watermark_ms, dict(self.floods), tuple(covered)))

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, deliveries: list[Delivery], now_ms: int) -> tuple[list[Effect], int]:
        """Decode a batch and run the pure engine over it; return the effects and the readings evaluated.

        ``now_ms`` only bounds which timestamps the decoder accepts (as ingest does); the rules run on
        the readings' own timestamps.
        """
        return self.evaluate_decoded(decode_batch(deliveries, now_ms))

    def evaluate_decoded(self, batch: DecodedBatch) -> tuple[list[Effect], int]:
        """`evaluate` over a batch already decoded; the effects without their ordinals (`evaluate_numbered`)."""
        numbered, evaluated = self.evaluate_numbered(batch)
        return [e for e, _ in numbered], evaluated

    def evaluate_numbered(self, batch: DecodedBatch) -> tuple[list[tuple[Effect, int]], int]:
        """Run the engine over a decoded batch: each effect with its ordinal among those of its
        (equipment, rule), and the readings evaluated.

        The outcome does not depend on where the stream was cut into batches: the batch is taken as
        runs of telemetry ("segments") that the engine may decide at once, cut wherever deciding at
        once could differ from deciding message by message: before an event, a status, a message with
        rejected entries, a reading of an equipment not newer than what the run holds for it, and after
        a message that moves the shard's event time past a silence tick. So a replay after a crash,
        cut into other batches, gives the same effects with the same ordinals (`Checkpoint`).
        """
        effects: list[Effect] = []
        segment = _Segment()
        limits = batch.limits
        by_code = self.by_code
        for d, topic, msg in batch.items:
            if isinstance(msg, TelemetryMessage):
                if msg.rejected:
                    self._flush(segment, effects)
                    for rej in msg.rejected:
                        self._range_fault(rej, topic.gateway_id, limits, effects)
                mine: list[tuple[int, int, Mapping[str, float]]] = []
                for e in msg.entries:
                    info = by_code.get(e.equipment)
                    if info is not None and info.gateway_id == topic.gateway_id:
                        mine.append((info.id, e.ts_ms, e.values))
                if not mine:
                    continue
                if segment.holds_newer(mine):
                    self._flush(segment, effects)
                before = _later(self.watermark_ms, segment.newest)
                after = _later(before, segment.add(mine))
                if before is None or (after is not None and after // SILENCE_TICK_MS != before // SILENCE_TICK_MS):
                    # A silence tick falls after this message (or it starts the shard's event time).
                    self._flush(segment, effects)
            elif isinstance(msg, Event):
                self._flush(segment, effects)
                info = by_code.get(msg.equipment)
                if info is not None and info.gateway_id == topic.gateway_id:
                    self.states[info.id], new = event_effects(
                        info.id, self.rules_for(info.id), self.state_of(info.id), event_type=msg.type,
                        active=msg.active, ts_ms=msg.ts_ms)
                    effects.extend(new)
                    self.dirty.add(info.id)
            else:
                self._flush(segment, effects)
                # The last will carries no time: it is placed at the shard's event time.
                ts = msg.ts_ms or self.watermark_ms or int(d.received_at * 1000)
                for eq_id in sorted(self.by_gateway.get(topic.gateway_id, ())):
                    self.states[eq_id], new = status_effects(
                        eq_id, self.rules_for(eq_id), self.state_of(eq_id),
                        online=msg.state is GatewayState.ONLINE, ts_ms=ts)
                    effects.extend(new)
                    self.dirty.add(eq_id)
        self._flush(segment, effects)
        return self._number(effects), segment.evaluated

    def _number(self, effects: list[Effect]) -> list[tuple[Effect, int]]:
        """Give each effect the next ordinal of its (equipment, rule): replayed effects get the same ones."""
        out = []
        emitted = self.emitted
        for e in effects:
            counts = emitted.get(e.equipment_id)
            if counts is None:
                counts = emitted[e.equipment_id] = {}
            n = counts[e.rule_key] = counts.get(e.rule_key, 0) + 1
            out.append((e, n))
            self.dirty.add(e.equipment_id)
        return out

    def _flush(self, segment: _Segment, effects: list[Effect]) -> None:
        """Decide a segment's telemetry, then move the shard's event time to its newest reading."""
        per_equipment = segment.per_equipment
        if not per_equipment:
            return
        self.dirty.update(per_equipment)
        if not segment.repeated:  # the common case, one wave: each equipment's one instant (counted in C-level passes)
            firsts = [instants[0] for instants in per_equipment.values()]
            segment.evaluated += sum(map(len, map(_VALUES, firsts)))
            self._step_wave(list(zip(per_equipment, firsts, strict=True)), effects)
        else:
            merged = {eq_id: merge_instants(instants) for eq_id, instants in per_equipment.items()}
            segment.evaluated += sum(len(values) for instants in merged.values() for _, values in instants)
            # In waves: each equipment's first instant, then its second, ... (one instant each a wave is
            # what the rows decide at once; each equipment still sees its instants in order).
            for depth in range(max(map(len, merged.values()))):
                self._step_wave([(eq_id, instants[depth]) for eq_id, instants in merged.items()
                                 if len(instants) > depth], effects)
        newest = segment.newest
        segment.clear()
        if newest is not None:
            effects.extend(self._advance_watermark(newest))

    def _step_wave(self, wave: list[tuple[int, tuple[int, Mapping[str, float]]]], effects: list[Effect]) -> None:
        """One instant of each of several equipment: rows decided at once, the rest one by one."""
        columns = self.columns
        held, wave = columns.partition(wave)
        loud = columns.step(held, self.detectors) if held else []
        merged = {eq_id: [instant] for eq_id, instant in wave}
        scores = self._anomaly_scores(merged)
        no_scores: dict[int, dict[str, float]] = {}
        for eq_id, instants in merged.items():
            self.states[eq_id], eq_effects = step_merged(eq_id, self.table_for(eq_id), self.state_of(eq_id),
                                                         instants, scores.get(eq_id, no_scores))
            if eq_effects:
                effects.extend(eq_effects)
            self._admit(eq_id)
        for eq_id, ts, values, found in loud:
            state = columns.release(eq_id)
            self.states[eq_id], eq_effects = step_general(eq_id, self.table_for(eq_id), state, [(ts, values)],
                                                          {} if found is None else {0: found})
            effects.extend(eq_effects)
            self._admit(eq_id)

    def _admit(self, eq_id: int) -> None:
        """Make the equipment a row of `columns` when its rules fit and its state is settled."""
        if not self._use_columns:
            return
        compiled = self._compiled.get(eq_id, self)  # self: not compiled yet
        if compiled is self:
            compiled = self._compiled[eq_id] = compile_shape(self.table_for(eq_id))
        if compiled is None:
            return
        assert isinstance(compiled, Compiled)
        rows = None
        if compiled.shape.detector:
            banked = self.detectors.banked(eq_id)
            if banked is None or banked[0] != compiled.shape.detector:
                return
            rows = banked[1:]
        if self.columns.admit(eq_id, compiled, self.states[eq_id], rows):
            del self.states[eq_id]

    def _anomaly_scores(self, merged: dict[int, list[tuple[int, Mapping[str, float]]]]
                        ) -> dict[int, dict[int, dict[str, float]]]:
        """The anomaly scores of a batch, every equipment at once: equipment → instant index → scores."""
        keys: list[tuple[int, int]] = []
        requests: list[tuple[int, float, Mapping[str, float]]] = []
        detectors = self.detectors
        for eq_id, instants in merged.items():
            if eq_id not in self.states:
                self.state_of(eq_id)  # a new equipment gets its detector
            if eq_id not in detectors:
                continue
            for index, known in anomaly_requests(self.table_for(eq_id), detectors.metrics_of(eq_id), instants):
                keys.append((eq_id, index))
                requests.append((eq_id, instants[index][0] / 1000, known))
        out: dict[int, dict[int, dict[str, float]]] = defaultdict(dict)
        for (eq_id, index), found in zip(keys, self.detectors.score(requests), strict=True):
            out[eq_id][index] = found
        return out

    def _range_fault(self, rej: Rejected, gateway_id: str, limits: Limits, effects: list[Effect]) -> None:
        """A reading outside the contract's physical range: a sensor fault alert for its equipment."""
        if rej.reason != ValueOutOfRange.reason or rej.equipment is None:
            return
        info = self.by_code.get(rej.equipment)
        entry = rej.entry if isinstance(rej.entry, dict) else {}
        values = entry.get("values")
        if info is None or info.gateway_id != gateway_id or not isinstance(values, dict) or not values:
            return
        try:
            ts_ms = parse_timestamp(entry.get("ts"), limits)
        except ContractError:
            return  # no usable time: nothing to place the alert at
        self.dirty.add(info.id)
        self.states[info.id], new = range_fault_effects(info.id, self.state_of(info.id), metric=next(iter(values)),
                                                        ts_ms=ts_ms, detail=rej.detail)
        effects.extend(new)

    def _advance_watermark(self, ts_ms: int) -> list[Effect]:
        """Move the shard's event time forward; at each 10 s boundary passed, judge silence."""
        before = self.watermark_ms
        if before is not None and ts_ms <= before:
            return []
        self.watermark_ms = ts_ms
        if before is None or ts_ms // SILENCE_TICK_MS == before // SILENCE_TICK_MS:
            return []
        tick = (ts_ms // SILENCE_TICK_MS) * SILENCE_TICK_MS
        return self.check_silence(tick)

    def check_silence(self, now_ms: int) -> list[Effect]:
        """No-data alerts for every equipment silent too long at event time ``now_ms``."""
        effects: list[Effect] = []
        for eq_id in self.columns.silent_candidates(now_ms):
            self.states[eq_id] = self.columns.release(eq_id)
        for eq_id, state in self.states.items():
            if state.last_seen_ms is None:
                continue
            after, new = check_silence(eq_id, self.equipment[eq_id].rated, self.table_for(eq_id), state, now_ms)
            if after is not state:
                self.states[eq_id] = after
                self.dirty.add(eq_id)
                effects.extend(new)
        return effects

    def floods_after(self, applied: list[Applied]) -> list[tuple[str, FloodChange, int, int]]:
        """Feed new annunciated alerts to the per-division flood windows; return (division, change, ts, peak)."""
        new: dict[str, list[int]] = defaultdict(list)
        for a in applied:
            if a.created and a.state == "active_unack":
                new[a.division_code].append(a.ts_ms)
        changes = []
        for division in sorted(set(new) | {d for d, s in self.floods.items() if s.flooding}):
            times = new.get(division, [])
            now = max([*times, self.watermark_ms or 0])
            state, change = flood_step(self.floods.get(division, FloodState()), times, now)
            self.floods[division] = state
            if change is not None:
                changes.append((division, change, now, state.peak))
        return changes


def housekeeping(conn: psycopg.Connection, engine: Engine, *, now: datetime, leagues: list[str]) -> list[Applied]:
    """The periodic job, at an explicit ``now``; runs in the caller's transaction."""
    engine.add(load_equipment(conn, leagues))
    engine.set_overrides(load_overrides(conn, leagues))
    sync_equipment_status(conn, leagues=leagues)
    expire_shelves(conn, now=now, leagues=leagues)
    effects: list[Effect] = []
    for facts, _category, open_keys in load_registry_facts(conn, leagues):
        if facts.equipment_id in engine.equipment:
            effects.extend(registry_effects(facts, engine.rules_for(facts.equipment_id), open_keys, now))
    return write_effects(conn, effects, engine.equipment)


CHECKPOINT_WINDOW_FRACTION = 0.5  # checkpoint once the unacked deliveries fill this much of the inflight window


def fingerprint(d: Delivery) -> bytes:
    """What identifies a delivery the broker sends again: its packet id (a resend keeps the original one,
    MQTT 4.4), topic and payload. The packet id matters: a last will carries no time, so two of one
    gateway are the same bytes, and without it a new one would pass for the earlier one sent again."""
    h = hashlib.blake2b(d.mid.to_bytes(4, "big"), digest_size=16)
    h.update(d.topic.encode())
    h.update(b"\0")
    h.update(d.payload)
    return h.digest()


class _Progress:
    """Deliveries evaluated and written but not yet covered by a checkpoint (so not acknowledged), and
    what the last checkpoint covered, to recognise them if the broker delivers them again."""

    def __init__(self, covered: Sequence[bytes]) -> None:
        self.pending: list[Delivery] = []
        self.pending_bytes = 0
        self.last_covered: tuple[bytes, ...] = tuple(covered)
        self.resent: deque[bytes] = deque(covered)  # covered deliveries the broker may send again, in order
        self.resent_budget = 0  # deliveries still looked at for them (set when a connection starts)
        self.generation: int | None = None
        self.last_checkpoint = time.monotonic()
        self.written: dict[tuple[int, str], int] = {}  # ordinal of the last effect written per (equipment, rule)

    def add(self, deliveries: list[Delivery]) -> None:
        self.pending.extend(deliveries)
        self.pending_bytes += sum(len(d.payload) for d in deliveries)

    def due(self, engine: Engine, *, checkpoint_s: float, max_messages: int, max_bytes: int) -> bool:
        if not self.pending and not engine.dirty:
            return False
        return (len(self.pending) >= max_messages * CHECKPOINT_WINDOW_FRACTION
                or self.pending_bytes >= max_bytes * CHECKPOINT_WINDOW_FRACTION
                or time.monotonic() - self.last_checkpoint >= checkpoint_s)

    def skip_covered(self, deliveries: list[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
        """Split off the deliveries the last checkpoint covers, sent again after a restart or reconnect
        (their acks were lost): (to evaluate, to acknowledge only). The broker sends what was not
        acknowledged first and in order, so they are looked for among the first deliveries only."""
        if not self.resent or self.resent_budget <= 0:
            return deliveries, []
        fresh, covered = [], []
        remaining = Counter(self.resent)
        for d in deliveries:
            self.resent_budget -= 1
            if self.resent and self.resent_budget >= 0:
                fp = fingerprint(d)
                if remaining[fp] > 0:
                    while True:  # those before it in the checkpoint were acknowledged: not coming again
                        popped = self.resent.popleft()
                        remaining[popped] -= 1
                        if popped == fp:
                            break
                    covered.append(d)
                    continue
            fresh.append(d)
        if self.resent_budget <= 0:
            self.resent.clear()
        return fresh, covered


def _load_engine(conn: psycopg.Connection, leagues: list[str]) -> tuple[Engine, _Progress]:
    """An engine continuing exactly from the shard's checkpoint (in the caller's transaction)."""
    engine = Engine()
    engine.add(load_equipment(conn, leagues))
    engine.set_overrides(load_overrides(conn, leagues))
    packed, plain, shard = load_checkpoint(conn, leagues)
    marks = load_effect_marks(conn, leagues)
    engine.restore(plain)  # a state saved as jsonb (before checkpoints, or seeded): until its first checkpoint
    covered = engine.restore_checkpoint(packed, shard, marks)
    engine.restore_active(load_active_conditions(conn, leagues))
    progress = _Progress(covered)
    progress.written = {(eq_id, key): seq for eq_id, keys in marks.items() for key, seq in keys.items()}
    log.info("engine state restored", extra={"checkpointed": len(packed), "saved_before": len(plain),
                                             "covered": len(covered), "watermark_ms": engine.watermark_ms})
    return engine, progress


def run(settings: Settings, *, stop: threading.Event | None = None,
        registry: CollectorRegistry = REGISTRY, ready: threading.Event | None = None) -> None:
    """Run an alert worker for ``settings.alerts.leagues`` (all when empty) until ``stop`` is set.

    A delivery is acknowledged to the broker only once a checkpoint covering it has committed; its
    alert changes are written at once (their latency does not wait for the checkpoint), each with its
    ordinal, so that the same change replayed after a crash is recognised and not written twice.
    """
    stop = stop or threading.Event()
    cfg = settings.alerts
    metrics = AlertMetrics(registry)
    checkpoints = CheckpointMetrics(registry)
    if cfg.metrics_port and registry is REGISTRY:
        serve_process_metrics(settings, "alerts")
    conn: psycopg.Connection | None = None
    loaded: tuple[Engine, _Progress] | None = None
    delays = backoff()
    while loaded is None and not stop.is_set():
        try:
            conn = connect(settings.db.url)
            with conn.transaction():
                loaded = _load_engine(conn, cfg.leagues)
        except psycopg.OperationalError as exc:
            log.error("database unavailable at start; retrying", extra={"error": str(exc).strip()[:200]})
            conn = None
            stop.wait(next(delays))
    if conn is None or loaded is None:
        return
    engine, progress = loaded
    settle_heap()
    filters = [device_filter(league) for league in cfg.leagues] or [device_filter()]
    window = (cfg.max_inflight, cfg.max_inflight_bytes)
    sub = Subscriber(settings.mqtt, client_id=f"safewatch-{cfg.worker_id}", topic_filters=filters,
                     max_inflight=window[0], max_inflight_bytes=window[1], protocol5=settings.mqtt.protocol5)
    next_housekeeping = time.monotonic()
    with sub:
        log.info("alert worker started", extra={"worker": cfg.worker_id, "equipment": len(engine.equipment),
                                                "filters": filters})
        while not stop.is_set():
            if ready is not None and not ready.is_set() and sub.subscribed.is_set():
                ready.set()
            if time.monotonic() >= next_housekeeping:
                conn = _housekeep(conn, engine, settings, metrics, stop)
                if conn is None:
                    break
                next_housekeeping = time.monotonic() + cfg.housekeeping_s
            max_bytes = batch_max_bytes(sub.oldest_received_at(), time.time(), cfg)
            deliveries = sub.get_batch(cfg.batch_max_messages, cfg.batch_max_ms / 1000, max_bytes)
            if deliveries:
                generation = max(d.generation for d in deliveries)
                if (progress.generation is not None and generation > progress.generation
                        and (progress.pending or engine.dirty)):
                    # A new connection: the broker sends again what we had not acknowledged. The engine has
                    # evaluated it already, so it is checkpointed now and recognised when it comes again
                    # (`skip_covered`). Going back to the last checkpoint to evaluate it again would be exact
                    # only if the broker sent exactly that again; after its kill -9 it does not: its session
                    # is a snapshot up to 5 s old, and what it lost the gateways send again after newer
                    # messages, so an alert raised before the kill was never cleared.
                    log.warning("broker reconnected with deliveries not yet checkpointed: checkpointing them",
                                extra={"deliveries": len(progress.pending)})
                    conn = _checkpoint(conn, engine, progress, sub, settings, checkpoints, stop,
                                       carry=progress.last_covered)
                    if conn is None:
                        break
                if progress.generation is None or generation > progress.generation:
                    progress.generation = generation
                    progress.resent = deque(progress.last_covered)
                    progress.resent_budget = window[0]
                current = progress.generation
                stale = [d for d in deliveries if d.generation < current]
                if stale:
                    sub.ack(stale)  # of the old connection: released, not acked; the broker sends them again
                    deliveries = [d for d in deliveries if d.generation >= current]
                deliveries, covered = progress.skip_covered(deliveries)
                if covered:
                    sub.ack(covered)
                    log.info("deliveries the checkpoint covered, sent again, acknowledged",
                             extra={"deliveries": len(covered)})
            if deliveries:
                conn = _handle(conn, deliveries, engine, progress, settings, metrics, stop)
                if conn is None:
                    break
                progress.add(deliveries)
            if progress.due(engine, checkpoint_s=cfg.checkpoint_s, max_messages=window[0], max_bytes=window[1]):
                conn = _checkpoint(conn, engine, progress, sub, settings, checkpoints, stop)
                if conn is None:
                    break
        if conn is not None and (progress.pending or engine.dirty):
            stopping = threading.Event()  # the last checkpoint is tried once more, even though we stop
            conn = _checkpoint(conn, engine, progress, sub, settings, checkpoints, stopping, once=True)
    log.info("alert worker stopped", extra={"worker": cfg.worker_id})


class CheckpointMetrics:
    """The checkpoint's cost, per checkpoint: its seconds (packing and writing) and the states it wrote."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram("safewatch_alerts_checkpoint_seconds", "Seconds to pack and write one checkpoint",
                                 registry=registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.states = prometheus_client.Counter("safewatch_alerts_checkpoint_states_total",
                                                "Equipment states written by checkpoints", registry=registry)
        self.acked = prometheus_client.Counter("safewatch_alerts_acked_total",
                                               "Deliveries acknowledged after their checkpoint", registry=registry)


def _checkpoint(conn: psycopg.Connection, engine: Engine, progress: _Progress, sub: Subscriber, settings: Settings,
                metrics: CheckpointMetrics, stop: threading.Event, *, once: bool = False,
                carry: Sequence[bytes] = ()) -> psycopg.Connection | None:
    """Write a checkpoint covering every pending delivery, then acknowledge them. ``carry``: fingerprints of
    deliveries covered before, to recognise them too (acknowledged on a connection now lost, the broker may
    send them again)."""
    started = time.perf_counter()
    covered = (*carry, *(fingerprint(d) for d in progress.pending))
    packed, shard = engine.checkpoint(covered)
    leagues = settings.alerts.leagues

    def work(c: psycopg.Connection) -> None:
        save_checkpoint(c, leagues=leagues, equipment=packed, shard=shard)

    if once:
        try:
            with conn.transaction():
                work(conn)
        except psycopg.Error as exc:
            log.error("last checkpoint not written; the next start replays what was not acknowledged",
                      extra={"error": str(exc).strip()[:200]})
            return conn
    else:
        reconnected, _ = _with_db(conn, settings, stop, work, "checkpoint")
        if reconnected is None:
            return None
        conn = reconnected
    sub.ack(progress.pending)
    metrics.seconds.observe(time.perf_counter() - started)
    metrics.states.inc(len(packed))
    metrics.acked.inc(len(progress.pending))
    progress.pending, progress.pending_bytes = [], 0
    progress.last_covered = covered
    progress.last_checkpoint = time.monotonic()
    return conn


def _with_db(conn: psycopg.Connection, settings: Settings, stop: threading.Event,
             work: Callable[[psycopg.Connection], T], what: str) -> tuple[psycopg.Connection | None, T | None]:
    """Run ``work(conn)`` in one transaction, reconnecting with back-off until it commits or we stop."""
    delays = backoff()
    while not stop.is_set():
        try:
            if conn.closed:
                conn = connect(settings.db.url)
            with conn.transaction():
                result = work(conn)
            return conn, result
        except psycopg.OperationalError as exc:
            log.error("database error; retrying", extra={"what": what, "error": str(exc).strip()[:200]})
            stop.wait(next(delays))
    return None, None


def _housekeep(conn: psycopg.Connection, engine: Engine, settings: Settings, metrics: AlertMetrics,
               stop: threading.Event) -> psycopg.Connection | None:
    leagues = settings.alerts.leagues
    def work(c: psycopg.Connection) -> tuple[list[Applied], dict[tuple[str, str], int]]:
        return housekeeping(c, engine, now=datetime.now(UTC), leagues=leagues), count_open_alerts(c, leagues=leagues)

    conn2, result = _with_db(conn, settings, stop, work, "housekeeping")
    if conn2 is None or result is None:
        return conn2
    applied, counts = result
    if applied:
        log.info("registry alerts changed", extra={"alerts": len(applied)})
    for severity, state in metrics.active_labels:  # every known pair, so what has gone reads 0
        metrics.active.labels(severity=severity, state=state).set(counts.get((severity, state), 0))
    return conn2


def _handle(conn: psycopg.Connection, deliveries: list[Delivery], engine: Engine, progress: _Progress,
            settings: Settings, metrics: AlertMetrics, stop: threading.Event) -> psycopg.Connection | None:
    """Evaluate one batch once, then commit its effects, retrying the database until it succeeds or we stop.

    An effect whose ordinal is not above the last written for its (equipment, rule) was written before
    a crash or reconnect, by the same engine state on the same deliveries: it is skipped."""
    leagues = settings.alerts.leagues

    # What the engine does not know yet is looked up first; in the steady state nothing is, and a batch
    # that changes no alert touches the database not at all (a round trip costs more than evaluating it).
    batch = decode_batch(deliveries, int(time.time() * 1000))
    missing = sorted(batch.equipment_codes() - engine.by_code.keys())
    gateways = {g for g in batch.status_gateways() if g not in engine.by_gateway}

    def preload(c: psycopg.Connection) -> None:
        if missing:
            engine.add(load_equipment_by_codes(c, missing, leagues))
        for gateway in sorted(gateways):
            engine.add(load_equipment_of_gateway(c, gateway, leagues))
            engine.by_gateway.setdefault(gateway, set())

    if missing or gateways:
        reconnected, _ = _with_db(conn, settings, stop, preload, "load equipment")
        if reconnected is None:
            return None
        conn = reconnected
    numbered, evaluated = engine.evaluate_numbered(batch)
    written = progress.written
    new = [(e, n) for e, n in numbered if n > written.get((e.equipment_id, e.rule_key), 0)]
    if len(new) < len(numbered):
        log.info("effects written before a restart, replayed, skipped", extra={"effects": len(numbered) - len(new)})
    effects = [e for e, _ in new]
    applied: list[Applied] = []
    if effects:
        def write(c: psycopg.Connection) -> list[Applied]:
            out = write_effects(c, effects, engine.equipment)
            record_effect_marks(c, ((e.equipment_id, e.rule_key, n) for e, n in new))
            return out

        reconnected, result = _with_db(conn, settings, stop, write, "write alerts")
        if reconnected is None or result is None:
            return None
        conn, applied = reconnected, result
        for e, n in new:
            written[(e.equipment_id, e.rule_key)] = n
    committed = time.time()
    floods = engine.floods_after(applied)
    if floods:
        def write_floods(c: psycopg.Connection) -> None:
            for division, change, ts_ms, peak in floods:
                record_flood(c, division=division, started=change is FloodChange.STARTED, ts_ms=ts_ms, peak=peak)
        reconnected, _ = _with_db(conn, settings, stop, write_floods, "record floods")
        for division, change, _, peak in floods:
            log.warning("alert flood %s", change, extra={"division": division, "peak": peak})
        if reconnected is None:
            return None
        conn = reconnected
    metrics.evaluated.inc(evaluated)
    received = {d.payload: d.received_at for d in deliveries} if effects else {}
    first_received = min(received.values()) if received else committed
    for e in effects:
        if isinstance(e, RaiseAlert):
            info = engine.equipment[e.equipment_id]
            metrics.raised.labels(severity=str(e.severity), rule_kind=str(e.kind), league=info.league_code).inc()
            metrics.latency.labels(severity=str(e.severity)).observe(max(0.0, committed - first_received))
            log.info("alert raised", extra={"equipment": info.code, "rule": e.rule_key, "severity": str(e.severity)})
        else:
            metrics.cleared.inc()
    return conn
