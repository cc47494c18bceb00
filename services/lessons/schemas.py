"""Lessons' HTTP bodies (events are in hocvu.contracts)."""
from marshmallow import EXCLUDE, Schema, fields, validate

from hocvu.contracts import UtcDateTime


class LessonOut(Schema):
    id = fields.String()
    title = fields.String()
    position = fields.Integer()


class CourseOut(Schema):
    id = fields.String()
    title = fields.String()
    group = fields.String()
    lessons = fields.List(fields.Nested(LessonOut))


class LessonProgressOut(LessonOut):
    status = fields.String()
    completed_at = UtcDateTime(allow_none=True)
    score = fields.Integer(allow_none=True)


class ProgressOut(Schema):
    enrollment_id = fields.String()
    course_id = fields.String()
    course_title = fields.String()
    learner_id = fields.Function(lambda plan: plan.learner.learner_id)
    lessons = fields.List(fields.Nested(LessonProgressOut))
    completed = fields.Boolean()
    completed_at = UtcDateTime(allow_none=True)


class CompleteLessonIn(Schema):
    class Meta:
        unknown = EXCLUDE

    score = fields.Integer(strict=True, allow_none=True, load_default=None,
                           validate=validate.Range(min=0, max=100))
