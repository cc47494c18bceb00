"""Certificates' HTTP bodies (events are in hocvu.contracts)."""
from marshmallow import Schema, fields

from hocvu.contracts import UtcDateTime
from hocvu.pagination import PageQuery, filter_field
from services.certificates.domain import display_code


class CertificateOut(Schema):
    id = fields.String(required=True, attribute="_id")
    serial = fields.String(required=True)
    verification_code = fields.Function(lambda cert: display_code(cert["verification_code"]),
                                        required=True)
    status = fields.String(required=True)
    enrollment_id = fields.String(required=True)
    learner_id = fields.String(required=True)
    course_id = fields.String(required=True)
    full_name = fields.String(required=True)
    course_title = fields.String(required=True)
    province_code = fields.String()
    commune_code = fields.String()
    issued_at = UtcDateTime(required=True)


class CertificatePageOut(Schema):
    items = fields.List(fields.Nested(CertificateOut), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class VerificationOut(Schema):
    """What anyone may see of a certificate, without logging in."""
    status = fields.String(required=True)
    serial = fields.String(required=True)
    verification_code = fields.Function(lambda cert: display_code(cert["verification_code"]),
                                        required=True)
    full_name = fields.String(required=True)
    course_title = fields.String(required=True)
    issued_at = UtcDateTime(required=True)


class CertificatesQuery(PageQuery):
    enrollment_id = filter_field("only this enrollment's")
    learner_id = filter_field("only this learner's")
