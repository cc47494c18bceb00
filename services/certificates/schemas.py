"""Certificates' HTTP bodies (events are in hocvu.contracts)."""
from marshmallow import Schema, fields

from hocvu.contracts import UtcDateTime
from hocvu.pagination import PageQuery, filter_field
from services.certificates.domain import display_code


class CertificateOut(Schema):
    id = fields.String(attribute="_id")
    serial = fields.String()
    verification_code = fields.Function(lambda cert: display_code(cert["verification_code"]))
    status = fields.String()
    enrollment_id = fields.String()
    learner_id = fields.String()
    course_id = fields.String()
    full_name = fields.String()
    course_title = fields.String()
    province_code = fields.String()
    commune_code = fields.String()
    issued_at = UtcDateTime()


class CertificatePageOut(Schema):
    items = fields.List(fields.Nested(CertificateOut))
    next_cursor = fields.String(allow_none=True)


class VerificationOut(Schema):
    """What anyone may see of a certificate, without logging in."""
    status = fields.String()
    serial = fields.String()
    verification_code = fields.Function(lambda cert: display_code(cert["verification_code"]))
    full_name = fields.String()
    course_title = fields.String()
    issued_at = UtcDateTime()


class CertificatesQuery(PageQuery):
    enrollment_id = filter_field("only this enrollment's")
    learner_id = filter_field("only this learner's")
