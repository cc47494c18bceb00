"""Lessons' HTTP bodies (events are in hocvu.contracts)."""
from marshmallow import EXCLUDE, Schema, fields, validate

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
