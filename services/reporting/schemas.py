"""Reporting's HTTP bodies. Every figure is a count of people or events in a commune: no
field here is personal data."""
from datetime import date

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from services.reporting import domain

MAX_RANGE_DAYS = 366


class FiguresQuery(Schema):
    """The filters of every figures route. Whatever is asked, only the caller's scope is
    answered: a province or commune outside it gives no rows, never an error that would
    tell it exists."""
    class Meta:
        unknown = EXCLUDE

    province = fields.String(validate=validate.Regexp(r"^\d{2}$", error="a 2-digit province code"),
                             metadata={"description": "a province code (2 digits)"})
    commune = fields.String(validate=validate.Regexp(r"^\d{5}$", error="a 5-digit commune code"),
                            metadata={"description": "a commune code (5 digits)"})
    group = fields.String(validate=validate.OneOf(domain.GROUPS),
                          metadata={"description": "a learner group"})
    age_band = fields.String(validate=validate.OneOf(domain.AGE_BANDS),
                             metadata={"description": "age reached in the year of enrolling"})
    date_from = fields.Date(data_key="from", metadata={
        "description": "first day (Vietnam time), YYYY-MM-DD; default: the beginning (the "
                       "table) or 29 days before `to` (the days)"})
    date_to = fields.Date(data_key="to", metadata={
        "description": "last day (Vietnam time), YYYY-MM-DD; default: today"})

    @validates_schema
    def _a_range(self, data, **_):
        start, end = data.get("date_from"), data.get("date_to") or date.fromisoformat(
            domain.today())
        if start and start > end:
            raise ValidationError("must not be after `to`", field_name="from")
        if start and (end - start).days >= MAX_RANGE_DAYS:
            raise ValidationError(f"at most {MAX_RANGE_DAYS} days", field_name="from")


_count = dict(required=True, metadata={"description": "a count"})


class FiguresOut(Schema):
    enrolled = fields.Integer(**_count)
    active = fields.Integer(required=True, metadata={
        "description": "enrollments with a lesson completed in the ACTIVE_DAYS days up to "
                       "the last day of the range"})
    lessons_completed = fields.Integer(**_count)
    courses_completed = fields.Integer(**_count)
    certificates_issued = fields.Integer(**_count)
    certificates_revoked = fields.Integer(**_count)
    cancellations = fields.Integer(**_count)
    sms_delivered = fields.Integer(**_count)
    sms_failed = fields.Integer(**_count)


class CommuneFiguresOut(FiguresOut):
    province_code = fields.String(required=True, allow_none=True)
    commune_code = fields.String(required=True)
    commune_name = fields.String(required=True, allow_none=True)
    certified = fields.Integer(required=True, metadata={
        "description": "certificates issued less those revoked"})
    certification_rate = fields.Float(required=True, allow_none=True, metadata={
        "description": "certified / adult_population if set, else certified / enrolled"})
    rate_basis = fields.String(required=True, validate=validate.OneOf(
        ("adult_population", "enrolled")))
    adult_population = fields.Integer(required=True, allow_none=True)
    target_rate = fields.Float(required=True)
    target_met = fields.Boolean(required=True)


class RangeOut(Schema):
    date_from = fields.String(required=True, allow_none=True, data_key="from")
    date_to = fields.String(required=True, data_key="to")


class CommunesOut(RangeOut):
    items = fields.List(fields.Nested(CommuneFiguresOut), required=True)
    totals = fields.Nested(FiguresOut, required=True)


class DayFiguresOut(FiguresOut):
    day = fields.String(required=True)


class DaysOut(RangeOut):
    items = fields.List(fields.Nested(DayFiguresOut), required=True, metadata={
        "description": "every day of the range, in order (zeros where nothing happened)"})


class TargetIn(Schema):
    class Meta:
        unknown = EXCLUDE

    target_rate = fields.Float(required=True, validate=validate.Range(min=0.01, max=1.0),
                               metadata={"description": "share of adults to certify, 0.01 to 1"})
    adult_population = fields.Integer(load_default=None, allow_none=True, strict=True,
                                      validate=validate.Range(min=1, max=10_000_000), metadata={
        "description": "the commune's adults (the rate's base); null: rate of those enrolled"})


class TargetOut(Schema):
    province_code = fields.String(required=True)
    commune_code = fields.String(required=True)
    target_rate = fields.Float(required=True)
    adult_population = fields.Integer(required=True, allow_none=True)


class TargetsOut(Schema):
    default_target_rate = fields.Float(required=True)
    items = fields.List(fields.Nested(TargetOut), required=True)
