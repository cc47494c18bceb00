"""The event envelope every service publishes and consumes.

An event on the wire is a JSON object:
    event_id, event_type, schema_version, occurred_at (UTC ISO 8601), correlation_id, data
`data` is validated against the contract of its event type (hocvu.contracts) both when
the event is created and when it is consumed. Unknown fields are ignored on the way in so
producers can add fields without a coordinated release.
"""
import uuid
from dataclasses import dataclass
from datetime import datetime

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from hocvu import contracts
from hocvu.clock import isoformat, utcnow


class MalformedEvent(Exception):
    """An event that can never be processed: bad JSON, wrong envelope or invalid data."""

    def __init__(self, reason: str, fields_at_fault: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.fields = fields_at_fault or {}


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True, validate=validate.Length(min=1, max=100))
    schema_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True, default_timezone=None)
    correlation_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    data = fields.Dict(required=True)


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    schema_version: int
    occurred_at: datetime
    correlation_id: str
    data: dict


_envelope = EnvelopeSchema()


def new_event(event_type: str, data: dict, correlation_id: str) -> dict:
    """Build the wire form of an event, validating `data` against its contract."""
    schema = contracts.schema_for(event_type)
    wire_data = schema.dump(data)
    errors = schema.validate(wire_data)
    if errors:
        raise ValueError(f"{event_type} data breaks its contract: {errors}")
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": contracts.SCHEMA_VERSION,
        "occurred_at": isoformat(utcnow()),
        "correlation_id": correlation_id,
        "data": wire_data,
    }


def parse_event(body, expected_type: str) -> Event:
    """Validate a consumed message body; raise MalformedEvent if it can never be processed."""
    if not isinstance(body, dict):
        raise MalformedEvent(f"event body must be a JSON object, got {type(body).__name__}")
    try:
        envelope = _envelope.load(body)
    except ValidationError as exc:
        raise MalformedEvent("invalid event envelope", exc.messages_dict) from exc
    if envelope["event_type"] != expected_type:
        raise MalformedEvent(
            f"event_type {envelope['event_type']!r} arrived where {expected_type!r} was expected")
    try:
        data = contracts.schema_for(expected_type).load(envelope["data"])
    except ValidationError as exc:
        raise MalformedEvent(f"invalid {expected_type} data", {"data": exc.messages_dict}) from exc
    return Event(
        event_id=str(envelope["event_id"]),
        event_type=envelope["event_type"],
        schema_version=envelope["schema_version"],
        occurred_at=envelope["occurred_at"],
        correlation_id=envelope["correlation_id"],
        data=data,
    )
