"""Enrollment's HTTP bodies (events are in hocvu.contracts)."""
import datetime

from marshmallow import (EXCLUDE, Schema, ValidationError, fields, post_load, validate,
                         validates, validates_schema)

from hocvu.contracts import LEARNER_GROUPS, UtcDateTime
from services.enrollment import identity


class LearnerIn(Schema):
    class Meta:
        unknown = EXCLUDE

    full_name = fields.String(required=True)
    phone = fields.String(required=True)
    national_id = fields.String(required=True)
    birth_year = fields.Integer(required=True, strict=True)
    group = fields.String(required=True, validate=validate.OneOf(LEARNER_GROUPS))
    province_code = fields.String(required=True)
    commune_code = fields.String(required=True, validate=validate.Regexp(
        r"^\d{5}$", error="must be a 5-digit commune or ward code"))

    @validates("full_name")
    def _full_name(self, value, **_):
        problems = identity.name_problems(identity.normalize_name(value))
        if problems:
            raise ValidationError(problems)

    @validates("phone")
    def _phone(self, value, **_):
        try:
            identity.normalize_phone(value)
        except identity.InvalidPhone as exc:
            raise ValidationError(str(exc)) from None

    @validates("birth_year")
    def _birth_year(self, value, **_):
        this_year = datetime.date.today().year
        if not 1900 <= value <= this_year:
            raise ValidationError(f"must be between 1900 and {this_year}")

    @validates("province_code")
    def _province_code(self, value, **_):
        if value not in identity.PROVINCE_CODES:
            raise ValidationError("must be the 2-digit code of one of the 34 provinces")

    @validates_schema(skip_on_field_errors=False)
    def _national_id(self, data, **_):
        if "national_id" not in data:
            return  # already reported as missing or not a string
        birth_year = data.get("birth_year") if isinstance(data.get("birth_year"), int) else None
        problems = identity.national_id_problems(data.get("national_id", ""), birth_year)
        if problems:
            raise ValidationError(problems, field_name="national_id")

    @post_load
    def _normalize(self, data, **_):
        data["full_name"] = identity.normalize_name(data["full_name"])
        data["phone"] = identity.normalize_phone(data["phone"])
        return data


class EnrollmentIn(Schema):
    class Meta:
        unknown = EXCLUDE

    course_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    learner = fields.Nested(LearnerIn, required=True)


class EnrollmentCreatedOut(Schema):
    id = fields.String(attribute="_id")
    learner_id = fields.String()
    course_id = fields.String()
    status = fields.String()
    enrolled_at = UtcDateTime()


class LearnerOut(Schema):
    """A learner as they and staff of their commune see them: the national ID and phone only
    masked (enrollment keeps nothing more of either)."""
    id = fields.String(attribute="_id")
    full_name = fields.String()
    phone = fields.String(attribute="phone_masked", metadata={"example": "+84*****5678"})
    national_id_last4 = fields.String()
    birth_year = fields.Integer()
    group = fields.String()
    province_code = fields.String()
    commune_code = fields.String()


class EnrollmentOut(EnrollmentCreatedOut):
    course_title = fields.String()
    province_code = fields.String()
    commune_code = fields.String()
    learner = fields.Nested(LearnerOut)


class EnrollmentSummaryOut(EnrollmentCreatedOut):
    course_title = fields.String()
    province_code = fields.String()
    commune_code = fields.String()
    group = fields.String()


class EnrollmentPageOut(Schema):
    items = fields.List(fields.Nested(EnrollmentSummaryOut))
    next_cursor = fields.String(allow_none=True)


class CatalogCourseOut(Schema):
    id = fields.String(attribute="_id")
    title = fields.String()
    group = fields.String()
    lesson_count = fields.Integer()
