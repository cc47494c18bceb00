"""Certificates' HTTP bodies (events are in hocvu.contracts)."""
from marshmallow import (EXCLUDE, Schema, ValidationError, fields, post_load, validate,
                         validates)

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
    # when revoked (status "revoked"): when and why
    revoked_at = UtcDateTime()
    revocation_reason = fields.String()


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
    # a revoked certificate says when and why, so the checker knows it no longer stands
    revoked_at = UtcDateTime()
    revocation_reason = fields.String()


class RevokeIn(Schema):
    class Meta:
        unknown = EXCLUDE

    reason = fields.String(required=True, validate=validate.Length(min=3, max=500), metadata={
        "description": "why, 3 to 500 characters (not only spaces): shown to anyone who "
                       "verifies the certificate and texted to the learner; name no third "
                       "person"})

    @validates("reason")
    def _not_blank(self, value, **_):
        if len(" ".join(value.split())) < 3:
            raise ValidationError("must say why in at least 3 characters, not only spaces")

    @post_load
    def _single_spaces(self, data, **_):
        data["reason"] = " ".join(data["reason"].split())
        return data


class CertificatesQuery(PageQuery):
    enrollment_id = filter_field("only this enrollment's")
    learner_id = filter_field("only this learner's")
