"""The engine's checkpoint as bytes (pure): one equipment's state, and the shard's, exactly.

A checkpoint is what a restarted worker continues from as if it had never stopped, so nothing here
rounds: floats stay float64, the anomaly detector's tables their bytes. The encoding is MessagePack
(msgspec): compact, several times cheaper than JSON for the same data, and safe to read back from
the database (it builds lists, dicts, numbers, strings and bytes, never objects, unlike pickle).
Versioned: an unknown version is refused (the worker then starts that equipment afresh, and says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from alerts.engine.anomaly import EquipmentDetector
from alerts.engine.nuisance import FloodState
from alerts.engine.rules import Condition
from alerts.engine.step import Bucket, EquipmentState

VERSION = 1
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


@dataclass(frozen=True, slots=True)
class EquipmentCheckpoint:
    """One equipment as checkpointed: its state, its effect ordinals per rule, and its anomaly detector:
    whole (``detector``, while a stream still learns) or as the banks hold it (``banked``, from
    `FleetDetector.checkpoint`; its bit tables are kept apart, written only when they change)."""

    state: EquipmentState
    emitted: Mapping[str, int]
    detector: EquipmentDetector | None = None
    banked: Sequence[Any] | None = None


@dataclass(frozen=True, slots=True)
class ShardCheckpoint:
    """What the shard keeps beside its equipment: event time, flood windows, and the fingerprints of the
    deliveries this checkpoint covers (acknowledged right after it commits: a crash before those acks
    reach the broker gets them again, and they must not be evaluated twice)."""

    watermark_ms: int | None = None
    floods: Mapping[str, FloodState] = field(default_factory=dict)
    covered: Sequence[bytes] = ()


def pack_equipment(state: EquipmentState, emitted: Mapping[str, int], *, detector: EquipmentDetector | None = None,
                   banked: Sequence[Any] | None = None) -> bytes:
    """One equipment's checkpoint (``state.detector`` is ignored: the detector is given apart)."""
    return _encoder.encode((
        VERSION,
        [(k, c.active, c.pending_since_ms, c.clearing_since_ms, c.last_ts_ms) for k, c in state.conditions.items()],
        [(k, [(b.start_ms, b.lo, b.hi, b.last, b.last_ms) for b in w]) for k, w in state.windows.items()],
        [(k, list(v)) for k, v in state.changes.items()],
        sorted(state.suppressed),
        state.last_seen_ms,
        dict(emitted),
        None if detector is None else detector.to_state(),
        banked,
    ))


def unpack_equipment(data: bytes) -> EquipmentCheckpoint:
    """Rebuild `pack_equipment`'s output; ValueError when it is not a checkpoint of this version."""
    try:
        version, *rest = _decoder.decode(data)
    except (msgspec.DecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"not an engine checkpoint: {exc}") from exc
    if version != VERSION:
        raise ValueError(f"unsupported engine checkpoint version {version!r}")
    conditions, windows, changes, suppressed, last_seen, emitted, detector, banked = rest
    state = EquipmentState(
        conditions={k: Condition(bool(a), p, c, t) for k, a, p, c, t in conditions},
        windows={k: tuple(Bucket(int(s), float(lo), float(hi), float(last), int(ms)) for s, lo, hi, last, ms in w)
                 for k, w in windows},
        changes={k: tuple(int(t) for t in v) for k, v in changes},
        suppressed=frozenset(suppressed),
        last_seen_ms=last_seen,
    )
    return EquipmentCheckpoint(state, {str(k): int(v) for k, v in emitted.items()},
                               None if detector is None else EquipmentDetector.from_state(detector), banked)


def pack_shard(shard: ShardCheckpoint) -> bytes:
    return _encoder.encode((VERSION, shard.watermark_ms,
                            [(d, list(f.times), f.flooding, f.peak) for d, f in shard.floods.items()],
                            list(shard.covered)))


def unpack_shard(data: bytes) -> ShardCheckpoint:
    try:
        version, watermark, floods, covered = _decoder.decode(data)
    except (msgspec.DecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"not a shard checkpoint: {exc}") from exc
    if version != VERSION:
        raise ValueError(f"unsupported shard checkpoint version {version!r}")
    return ShardCheckpoint(watermark, {d: FloodState(tuple(times), bool(flooding), int(peak))
                                       for d, times, flooding, peak in floods},
                           tuple(bytes(c) for c in covered))

