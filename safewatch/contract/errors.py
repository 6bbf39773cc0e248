"""Errors raised while decoding what a gateway published.

Each error carries a stable ``reason``: it is the dead-letter column and the metric label.

    ContractError
    ├── BadTopic
    ├── PayloadTooLarge
    ├── MalformedPayload
    ├── UnknownMetric
    ├── UnknownEventType
    ├── ValueOutOfRange
    └── BadTimestamp
"""

from __future__ import annotations


class ContractError(ValueError):
    """A message, or one entry of it, breaks the wire contract."""

    reason = "contract"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadTopic(ContractError):
    """The topic is not ``se/v1/{league}/{gateway}/{telemetry|event|status}``."""

    reason = "bad_topic"


class PayloadTooLarge(ContractError):
    """The payload is over the size limit; it is not parsed."""

    reason = "payload_too_large"


class MalformedPayload(ContractError):
    """Not JSON, or JSON of the wrong shape or types."""

    reason = "malformed_payload"


class UnknownMetric(ContractError):
    """A metric name the catalogue does not know for that equipment category."""

    reason = "unknown_metric"


class UnknownEventType(ContractError):
    """An event type the catalogue does not know."""

    reason = "unknown_event_type"


class ValueOutOfRange(ContractError):
    """A value outside the physical range of its metric (a broken sensor or a unit error)."""

    reason = "value_out_of_range"


class BadTimestamp(ContractError):
    """A timestamp that cannot be read, or lies too far in the future or the past."""

    reason = "bad_timestamp"


#: Every reason a message or entry can be rejected for, for metric label initialisation.
CONTRACT_REASONS: tuple[str, ...] = tuple(
    cls.reason
    for cls in (
        BadTopic,
        PayloadTooLarge,
        MalformedPayload,
        UnknownMetric,
        UnknownEventType,
        ValueOutOfRange,
        BadTimestamp,
    )
)
