"""Enrollment's HTTP bodies (events are in hocvu.contracts)."""
import datetime

from marshmallow import (EXCLUDE, Schema, ValidationError, fields, post_load, validate,
                         validates, validates_schema)

from hocvu import reference
from hocvu.contracts import LEARNER_GROUPS, UtcDateTime
from hocvu.places import is_commune_code
from hocvu.pagination import PageQuery, filter_field
from services.enrollment import identity


class LearnerIn(Schema):
    """Each field's validators are what the OpenAPI document states; the rules a JSON schema
    cannot say (letters of any script, the mobile number plan, a CCCD encoding the birth
    year, a year not in the future) are checked below and described in words."""
    class Meta:
        unknown = EXCLUDE

    full_name = fields.String(required=True, validate=validate.Length(min=2, max=100), metadata={
        "description": "2 to 100 letters (any script), spaces, dots, apostrophes and hyphens; "
                       "stored NFC with single spaces"})
    phone = fields.String(required=True, validate=validate.Regexp(
        identity.PHONE_PATTERN, error="digits, with an optional + and spaces, dots, dashes or "
                                      "brackets"), metadata={
        "description": "a Vietnamese mobile number (10 digits starting 03, 05, 07, 08 or 09; "
                       "or +84 / 84 and 9 digits)"})
    national_id = fields.String(required=True, validate=validate.Regexp(
        identity.NATIONAL_ID_PATTERN, error="12 digits starting with a province code"),
        metadata={"description": "the 12-digit CCCD; its 4th to 6th digits encode birth_year"})
    birth_year = fields.Integer(required=True, strict=True, validate=validate.Range(
        min=1900, error="must be 1900 or later"),
        metadata={"description": "1900 to the current year"})
    group = fields.String(required=True, validate=validate.OneOf(LEARNER_GROUPS))
    province_code = fields.String(required=True, validate=validate.OneOf(
        sorted(identity.PROVINCE_CODES),
        error="must be the 2-digit code of one of the 34 provinces"))
    commune_code = fields.String(required=True, validate=validate.Regexp(
        r"^[0-9]{5}$", error="must be a 5-digit commune or ward code"), metadata={
        "description": "a commune or ward of province_code, from the official list of units "
                       "since 1 July 2025 (GET /api/enrollment/communes?province=...)"})

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
        if value > this_year:
            raise ValidationError(f"must be between 1900 and {this_year}")

    @validates_schema(skip_on_field_errors=False)
    def _national_id(self, data, **_):
        if "national_id" not in data:
            return  # already reported as missing or not a string
        birth_year = data.get("birth_year") if isinstance(data.get("birth_year"), int) else None
        problems = identity.national_id_problems(data.get("national_id", ""), birth_year)
        if problems:
            raise ValidationError(problems, field_name="national_id")

    @validates_schema(skip_on_field_errors=False)
    def _commune_of_the_province(self, data, **_):
        province, commune = data.get("province_code"), data.get("commune_code")
        if province not in identity.PROVINCE_CODES or not is_commune_code(commune):
            return  # already reported by the fields' own validators
        problems = reference.commune_problems(province, commune)
        if problems:
            raise ValidationError(problems, field_name="commune_code")

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
    id = fields.String(required=True, attribute="_id")
    learner_id = fields.String(required=True)
    course_id = fields.String(required=True)
    status = fields.String(required=True)
    enrolled_at = UtcDateTime(required=True)


class LearnerOut(Schema):
    """A learner as they and staff of their commune see them: the national ID and phone only
    masked (enrollment keeps nothing more of either)."""
    id = fields.String(required=True, attribute="_id")
    full_name = fields.String(required=True)
    phone = fields.String(attribute="phone_masked", metadata={"example": "+84*****5678"})
    national_id_last4 = fields.String()
    birth_year = fields.Integer()
    group = fields.String()
    province_code = fields.String()
    commune_code = fields.String()


class EnrollmentOut(EnrollmentCreatedOut):
    course_title = fields.String(required=True)
    cancelled_at = UtcDateTime(metadata={"description": "when it was cancelled (status "
                                                        "cancelled)"})
    province_code = fields.String(required=True)
    commune_code = fields.String(required=True)
    learner = fields.Nested(LearnerOut, required=True, allow_none=True)


class EnrollmentSummaryOut(EnrollmentCreatedOut):
    course_title = fields.String(required=True)
    cancelled_at = UtcDateTime()
    province_code = fields.String(required=True)
    commune_code = fields.String(required=True)
    group = fields.String(required=True)


class EnrollmentPageOut(Schema):
    items = fields.List(fields.Nested(EnrollmentSummaryOut), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class CatalogCourseOut(Schema):
    id = fields.String(required=True, attribute="_id")
    title = fields.String(required=True)
    group = fields.String(required=True)
    lesson_count = fields.Integer(required=True)


class EnrollmentsQuery(PageQuery):
    commune_code = fields.String(validate=validate.Regexp(
        r"^[0-9]{5}$", error="5 digits"), metadata={"description": "only this commune"})
    course_id = filter_field("only this course")


class PlaceOut(Schema):
    """A province, commune or ward of the official list (public data, nothing personal)."""
    code = fields.String(required=True)
    name = fields.String(required=True)


class CommunesQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    province = fields.String(required=True, validate=validate.OneOf(
        sorted(identity.PROVINCE_CODES),
        error="must be the 2-digit code of one of the 34 provinces"),
        metadata={"description": "the province whose communes and wards to list (all of them: "
                                 "at most 168)"})


class CommunesOut(Schema):
    province = fields.Nested(PlaceOut, required=True)
    communes = fields.List(fields.Nested(PlaceOut), required=True)


# --- bulk enrollment (services/enrollment/bulk.py) -------------------------------------

CSV_BODY = {"text/csv": {"schema": {
    "type": "string", "format": "binary",
    "description": "a CSV file with a header line (Vietnamese or English names, any order): "
                   "UTF-8 with or without a byte-order mark, Windows-1258, or UTF-16 "
                   "(Excel's \"Unicode Text\", tab-separated); separated by commas, "
                   "semicolons or tabs (docs/api.md)"}}}


class ImportQuery(Schema):
    course_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                              metadata={"description": "the course every row enrolls in"})
    commune_code = fields.String(validate=validate.Regexp(r"^[0-9]{5}$", error="5 digits"),
                                 metadata={"description": "the commune of rows that name none "
                                                          "(a site's list); one you cover"})


class ImportCountsOut(Schema):
    valid = fields.Integer(required=True, metadata={"description": "enrolled + already_enrolled"})
    enrolled = fields.Integer(required=True)
    already_enrolled = fields.Integer(required=True)
    invalid = fields.Integer(required=True, metadata={
        "description": "rows that changed nothing: the report says why"})


class ImportFileOut(Schema):
    bytes = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    encoding = fields.String(required=True, metadata={
        "description": "utf-8, utf-8-sig (with a byte-order mark), utf-16 or windows-1258"})
    delimiter = fields.String(required=True, metadata={"description": "\",\", \";\" or tab"})
    columns = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                          metadata={"description": "our field -> the header as written"})


class ImportOut(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(
        ["queued", "running", "done", "interrupted"]))
    course_id = fields.String(required=True)
    rows = fields.Integer(required=True)
    processed = fields.Integer(required=True)
    progress = fields.Float(required=True, metadata={"description": "0 to 1"})
    counts = fields.Nested(ImportCountsOut, required=True)
    file = fields.Nested(ImportFileOut, required=True)
    created_at = UtcDateTime(required=True)
    finished_at = UtcDateTime(required=True, allow_none=True)


class LookupQuery(Schema):
    course_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                              metadata={"description": "the course the class teaches"})


class FoundEnrollmentOut(Schema):
    row = fields.Integer(required=True)
    enrollment_id = fields.String(required=True)


class RowProblemOut(Schema):
    row = fields.Integer(required=True)
    field = fields.String(required=True)
    message_vi = fields.String(required=True)
    message_en = fields.String(required=True)


class LookupOut(Schema):
    items = fields.List(fields.Nested(FoundEnrollmentOut), required=True)
    problems = fields.List(fields.Nested(RowProblemOut), required=True)
