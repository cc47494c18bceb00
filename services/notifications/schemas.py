"""Notifications' HTTP bodies (events are in hocvu.contracts)."""
from marshmallow import EXCLUDE, Schema, fields, validate

from hocvu.contracts import UtcDateTime
from hocvu.pagination import PageQuery, filter_field
from hocvu.privacy import mask_phone
from services.notifications import domain


class MessageOut(Schema):
    id = fields.String(required=True, attribute="_id")
    template = fields.String(required=True)
    learner_id = fields.String(required=True)
    enrollment_id = fields.String(required=True)
    to = fields.Function(lambda message: mask_phone(message.get("to") or ""), required=True)
    text = fields.String(required=True)
    encoding = fields.String(required=True)
    segments = fields.Integer(required=True)
    status = fields.String(required=True)
    # one of domain.LEARNER_STATUSES' values, and why, in words (docs/sms-gateway.md)
    learner_status = fields.Function(domain.learner_status)
    reason = fields.Function(domain.reason)
    attempts = fields.Integer(required=True)
    created_at = UtcDateTime(required=True)
    accepted_at = UtcDateTime()
    delivered_at = UtcDateTime()


class MessagePageOut(Schema):
    items = fields.List(fields.Nested(MessageOut), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class DeliveryReportIn(Schema):
    """What the gateway posts to SMS_CALLBACK_URL (docs/sms-gateway.md)."""
    class Meta:
        unknown = EXCLUDE

    request_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    message_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    status = fields.String(required=True, validate=validate.Length(min=1, max=40))
    delivered_at = fields.AwareDateTime(load_default=None, allow_none=True)


class SmsPreferencesIn(Schema):
    """A learner's choice about reminder-like SMS; transactional ones always go."""
    reminders = fields.Boolean(required=True, truthy={True}, falsy={False})


class SmsPreferencesOut(Schema):
    learner_id = fields.String()
    reminders = fields.Boolean()
    changed_at = UtcDateTime(allow_none=True)


class InboundSmsIn(Schema):
    """A learner's reply, as the gateway (simulator mode) posts it: personal data (phone)."""
    class Meta:
        unknown = EXCLUDE

    sender = fields.String(required=True, data_key="from",
                           validate=validate.Regexp(r"^\+?84[35789]\d{8}$"))
    text = fields.String(required=True, validate=validate.Length(min=1, max=1600))
    received_at = fields.AwareDateTime(load_default=None, allow_none=True)


class MessagesQuery(PageQuery):
    learner_id = filter_field("only this learner's")
    enrollment_id = filter_field("only this enrollment's")
