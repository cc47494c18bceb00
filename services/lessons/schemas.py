"""Lessons' HTTP bodies (events are in hocvu.contracts)."""
import datetime

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from hocvu.contracts import UtcDateTime


class LessonOut(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    position = fields.Integer(required=True)


class CourseOut(Schema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    group = fields.String(required=True)
    lessons = fields.List(fields.Nested(LessonOut), required=True)
    order = fields.String(required=True, metadata={
        "description": "strict: each lesson only after the one before it; free: any order"})
    pass_mark = fields.Integer(required=True, allow_none=True, metadata={
        "description": "the lowest score that completes a lesson (null: any completion)"})


class LessonProgressOut(LessonOut):
    status = fields.String(required=True)
    completed_at = UtcDateTime(required=True, allow_none=True)
    score = fields.Integer(required=True, allow_none=True)
    attempts = fields.Integer(required=True, metadata={
        "description": "completions sent for this lesson, those below the pass mark included"})
    last_score = fields.Integer(required=True, allow_none=True)
    last_attempt_at = UtcDateTime(required=True, allow_none=True)
    reason = fields.String(allow_none=True, metadata={
        "description": "session:<id> when completed by being present in class"})


class ProgressOut(Schema):
    enrollment_id = fields.String(required=True)
    course_id = fields.String(required=True)
    course_title = fields.String(required=True)
    learner_id = fields.Function(lambda plan: plan.learner.learner_id, required=True)
    lessons = fields.List(fields.Nested(LessonProgressOut), required=True)
    completed = fields.Boolean(required=True)
    completed_at = UtcDateTime(required=True, allow_none=True)
    status = fields.String(required=True, metadata={
        "description": "active, or cancelled (the enrollment was: nothing more completes)"})
    cancelled_at = UtcDateTime(required=True, allow_none=True)
    order = fields.String(required=True)
    pass_mark = fields.Integer(required=True, allow_none=True)


class CompleteLessonIn(Schema):
    class Meta:
        unknown = EXCLUDE

    score = fields.Integer(strict=True, allow_none=True, load_default=None,
                           validate=validate.Range(min=0, max=100))


# --- classes (services/lessons/attendance.py) ------------------------------------------

def _not_in_the_future(value):
    # a class is recorded on its day or after; a day's margin for time zones
    if value > datetime.date.today() + datetime.timedelta(days=1):
        raise ValidationError("a class cannot be recorded before it happens")


_enrollment_ids = dict(
    cls_or_instance=fields.String(validate=validate.Length(min=1, max=64)),
    validate=validate.Length(max=500),
    metadata={"description": "the learners present, by enrollment id (at most 500; "
                             "enrollment's POST /enrollments/lookup turns a CSV of national "
                             "IDs into them)"})


class SessionIn(Schema):
    class Meta:
        unknown = EXCLUDE

    course_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    lesson_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    commune_code = fields.String(required=True, validate=validate.Regexp(
        r"^[0-9]{5}$", error="must be a 5-digit commune or ward code"))
    site = fields.String(required=True, validate=validate.Length(min=1, max=200), metadata={
        "description": "where the class met (the commune's community digital team's site)"})
    date = fields.Date(required=True, validate=_not_in_the_future,
                       metadata={"description": "the day of the class, not in the future"})
    enrollment_ids = fields.List(load_default=list, **_enrollment_ids)


class AttendanceIn(Schema):
    class Meta:
        unknown = EXCLUDE

    enrollment_ids = fields.List(required=True, **{
        **_enrollment_ids, "validate": validate.Length(min=1, max=500)})


class AttendanceResultOut(Schema):
    enrollment_id = fields.String(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(
        ["completed", "already_completed", "not_found", "other_course",
         "enrollment_cancelled", "out_of_order"]))


class SessionOut(Schema):
    id = fields.String(required=True, attribute="_id")
    course_id = fields.String(required=True)
    lesson_id = fields.String(required=True)
    commune_code = fields.String(required=True)
    site = fields.String(required=True)
    date = fields.String(required=True, metadata={"format": "date"})
    present = fields.List(fields.String(), required=True)
    results = fields.List(fields.Nested(AttendanceResultOut), metadata={
        "description": "what recording each learner of this request did"})
