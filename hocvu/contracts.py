"""The published language between services: one marshmallow schema per event's `data`.

Producers validate what they publish and consumers what they receive, against the same
schema. Unknown fields are excluded on load (a tolerant reader); a field is only ever
added, never renamed or removed, within one SCHEMA_VERSION.

Who publishes what (exchange `<service>.events`, routing key = event type):
    lessons       course_published, lessons_assigned, lesson_completed, course_completed
    enrollment    learner_enrolled, learner_contact_registered, enrollment_cancelled
    certificates  certificate_issued, certificate_revoked
    identity      sign_in_code_requested
    notifications sms_outcome; sms_report_received (to itself: a provider's delivery
                  report, queued so that the provider is answered before the store is asked)
`learner_contact_registered` and `sign_in_code_requested` are the only events that carry a
phone number (the latter also a one-time code), sealed so that only notifications (their only
subscriber) can read it (hocvu.sealing). No event ever carries a national ID.
`learner_subject` is the learner's pseudonymous sign-in subject (a keyed hash of their phone,
hocvu.auth.learner_subject): services keep it to let a learner see their own records.
"""
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from hocvu.clock import isoformat

SCHEMA_VERSION = 1

# Who consumes each event, as (service, handler method): the queue nameko names
# evt-<source>-<event_type>--<service>.<method>. The publisher declares these durable queues
# before it publishes, so an event waits for a consumer that has not started yet instead of
# being routed to only some of them. tests/unit/test_contracts.py checks this table
# against the services' @subscribe handlers.
SUBSCRIBERS = {
    "course_published": [("enrollment", "remember_course")],
    "learner_enrolled": [("lessons", "assign_lessons"), ("notifications", "confirm_enrollment"),
                         ("reporting", "count_enrollment")],
    "learner_contact_registered": [("notifications", "remember_contact")],
    "lessons_assigned": [("notifications", "remember_lessons")],
    "lesson_completed": [("notifications", "note_progress"), ("reporting", "count_lesson")],
    "course_completed": [("certificates", "issue_certificate"),
                         ("notifications", "stop_reminders"),
                         ("reporting", "count_course_completion")],
    "certificate_issued": [("notifications", "announce_certificate"),
                           ("reporting", "count_certificate")],
    "sign_in_code_requested": [("notifications", "send_sign_in_code")],
    "enrollment_cancelled": [("certificates", "note_cancellation"), ("lessons", "stop_plan"),
                             ("notifications", "stop_reminders_for_cancellation"),
                             ("reporting", "count_cancellation")],
    "certificate_revoked": [("notifications", "announce_revocation"),
                            ("reporting", "count_revocation")],
    "sms_outcome": [("reporting", "count_sms")],
    "sms_report_received": [("notifications", "apply_reports")],
}


class UtcDateTime(fields.AwareDateTime):
    """ISO 8601 in UTC with milliseconds and Z, the one format of every date we write."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else isoformat(value)

LEARNER_GROUPS = ("official", "student", "worker", "citizen")

_id = dict(required=True, validate=validate.Length(min=1, max=64))
_title = dict(required=True, validate=validate.Length(min=1, max=300))
_group = dict(required=True, validate=validate.OneOf(LEARNER_GROUPS))
_full_name = dict(required=True, validate=validate.Length(min=1, max=200))
# added after the first release: absent in events stored before it (tolerant reader)
_subject = dict(load_default=None, allow_none=True, validate=validate.Length(min=1, max=200))
_province = dict(validate=validate.Regexp(r"^\d{2}$"))
_commune = dict(validate=validate.Regexp(r"^\d{5}$"))


class _Data(Schema):
    class Meta:
        unknown = EXCLUDE


class LessonRef(_Data):
    id = fields.String(**_id)
    title = fields.String(**_title)
    position = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class CoursePublished(_Data):
    course_id = fields.String(**_id)
    title = fields.String(**_title)
    group = fields.String(**_group)
    lessons = fields.List(fields.Nested(LessonRef), required=True,
                          validate=validate.Length(min=1))


class _AboutAnEnrollment(_Data):
    enrollment_id = fields.String(**_id)
    learner_id = fields.String(**_id)
    course_id = fields.String(**_id)


class _NamedLearnerInACommune(_AboutAnEnrollment):
    """What a certificate needs to name the learner and a report to place them."""
    course_title = fields.String(**_title)
    full_name = fields.String(**_full_name)
    group = fields.String(**_group)
    province_code = fields.String(required=True, **_province)
    commune_code = fields.String(required=True, **_commune)
    learner_subject = fields.String(**_subject)


class LearnerEnrolled(_NamedLearnerInACommune):
    enrolled_at = UtcDateTime(required=True)
    # added: for reports by age band (the campaign counts people of 60 and over apart);
    # absent from events of an older enrollment service
    birth_year = fields.Integer(load_default=None, allow_none=True, strict=True,
                                validate=validate.Range(min=1900, max=2100))


class EnrollmentCancelled(_AboutAnEnrollment):
    """The learner, or staff covering their commune, cancelled: lessons stop, no certificate
    and no reminder follow."""
    group = fields.String(**_group)
    province_code = fields.String(required=True, **_province)
    commune_code = fields.String(required=True, **_commune)
    learner_subject = fields.String(**_subject)
    cancelled_at = UtcDateTime(required=True)
    cancelled_by = fields.String(required=True, validate=validate.OneOf(("learner", "staff")))


class LearnerContactRegistered(_Data):
    learner_id = fields.String(**_id)
    enrollment_id = fields.String(**_id)
    full_name = fields.String(**_full_name)
    # the E.164 number sealed for notifications; `phone` in clear is what the first release sent
    sealed_phone = fields.String(load_default=None, validate=validate.Length(min=1, max=500))
    phone = fields.String(load_default=None, validate=validate.Regexp(r"^\+84\d{9}$"))

    @validates_schema
    def _a_number(self, data, **_):
        if not data.get("sealed_phone") and not data.get("phone"):
            raise ValidationError("sealed_phone is required", field_name="sealed_phone")


class LessonsAssigned(_AboutAnEnrollment):
    lesson_ids = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    # added: the same lessons with their titles and order, for the reminder SMS that names
    # the next one; absent from events of an older lessons service
    lessons = fields.List(fields.Nested(LessonRef), load_default=None)
    assigned_at = UtcDateTime(required=True)


class LessonCompleted(_AboutAnEnrollment):
    lesson_id = fields.String(**_id)
    score = fields.Integer(allow_none=True, load_default=None,
                           validate=validate.Range(min=0, max=100))
    completed_at = UtcDateTime(required=True)


class CourseCompleted(_NamedLearnerInACommune):
    completed_at = UtcDateTime(required=True)


class CertificateIssued(_AboutAnEnrollment):
    certificate_id = fields.String(**_id)
    serial = fields.String(**_id)
    verification_code = fields.String(**_id)
    course_title = fields.String(**_title)
    full_name = fields.String(**_full_name)
    issued_at = UtcDateTime(required=True)
    verify_url = fields.Url(required=True, require_tld=False)
    province_code = fields.String(load_default=None, **_province)
    commune_code = fields.String(load_default=None, **_commune)
    learner_subject = fields.String(**_subject)


class CertificateRevoked(_AboutAnEnrollment):
    """A province admin revoked a certificate; verification answers revoked from then on."""
    certificate_id = fields.String(**_id)
    serial = fields.String(**_id)
    full_name = fields.String(**_full_name)
    course_title = fields.String(**_title)
    group = fields.String(required=True, validate=validate.OneOf(LEARNER_GROUPS))
    province_code = fields.String(required=True, **_province)
    commune_code = fields.String(required=True, **_commune)
    learner_subject = fields.String(**_subject)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))
    revoked_at = UtcDateTime(required=True)


class SmsOutcome(_Data):
    """An SMS reached its end: delivered, or failed for good. Carries where the learner is,
    for reports; never the number or the text."""
    message_id = fields.String(**_id)
    template = fields.String(required=True, validate=validate.Length(min=1, max=64))
    status = fields.String(required=True, validate=validate.OneOf(("delivered", "failed")))
    enrollment_id = fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(min=1, max=64))
    province_code = fields.String(load_default=None, allow_none=True, **_province)
    commune_code = fields.String(load_default=None, allow_none=True, **_commune)
    group = fields.String(load_default=None, allow_none=True,
                          validate=validate.OneOf(LEARNER_GROUPS))
    settled_at = UtcDateTime(required=True)


class SmsReportReceived(_Data):
    """A provider's (or the gateway's) delivery report, as notifications received it: our
    message id or the provider's (at least one), what it says. Ids and a status only."""
    source = fields.String(required=True, validate=validate.OneOf(("gateway", "esms",
                                                                    "speedsms")))
    status = fields.String(required=True, validate=validate.OneOf(("delivered",
                                                                    "undelivered")))
    request_id = fields.String(load_default=None, allow_none=True,
                               validate=validate.Length(min=1, max=64))
    provider_message_id = fields.String(load_default=None, allow_none=True,
                                        validate=validate.Length(min=1, max=100))
    delivered_at = UtcDateTime(load_default=None, allow_none=True)
    detail = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(max=200))
    received_at = UtcDateTime(required=True)

    @validates_schema
    def _names_a_message(self, data, **kwargs):
        if not data.get("request_id") and not data.get("provider_message_id"):
            raise ValidationError("a report names our request_id or the provider's message id")


# a hocvu.sealing value: base64 of a sealed box (48 bytes of overhead) around a short text
_sealed = dict(required=True, validate=[validate.Length(min=64, max=512), validate.Regexp(
    r"^[A-Za-z0-9+/]+={0,2}$", error="must be a sealed value (base64)")])


class SignInCodeRequested(_Data):
    """A learner asked for a sign-in code: notifications texts it to them."""
    request_id = fields.String(**_id)
    phone = fields.String(**_sealed)   # E.164, sealed for notifications
    code = fields.String(**_sealed)    # 6 digits, sealed for notifications
    expires_at = UtcDateTime(required=True)


SOURCES = {
    "course_published": "lessons", "lessons_assigned": "lessons",
    "lesson_completed": "lessons", "course_completed": "lessons",
    "learner_enrolled": "enrollment", "learner_contact_registered": "enrollment",
    "certificate_issued": "certificates", "certificate_revoked": "certificates",
    "enrollment_cancelled": "enrollment",
    "sign_in_code_requested": "identity",
    "sms_outcome": "notifications", "sms_report_received": "notifications",
}

_SCHEMAS = {
    "course_published": CoursePublished(),
    "learner_enrolled": LearnerEnrolled(),
    "learner_contact_registered": LearnerContactRegistered(),
    "lessons_assigned": LessonsAssigned(),
    "lesson_completed": LessonCompleted(),
    "course_completed": CourseCompleted(),
    "certificate_issued": CertificateIssued(),
    "sign_in_code_requested": SignInCodeRequested(),
    "enrollment_cancelled": EnrollmentCancelled(),
    "certificate_revoked": CertificateRevoked(),
    "sms_outcome": SmsOutcome(),
    "sms_report_received": SmsReportReceived(),
}

EVENT_TYPES = tuple(_SCHEMAS)


def schema_for(event_type: str) -> Schema:
    try:
        return _SCHEMAS[event_type]
    except KeyError:
        raise ValueError(f"no contract for event type {event_type!r}") from None
