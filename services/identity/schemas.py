"""Identity's HTTP bodies. Personal data: a learner's phone number (never stored in clear:
only its keyed hash), staff display names and usernames."""
from marshmallow import (EXCLUDE, Schema, ValidationError, fields, post_load, validate,
                         validates, validates_schema)

from hocvu.contracts import UtcDateTime
from hocvu.phones import PHONE_PATTERN, InvalidPhone, normalize_phone
from hocvu.places import PROVINCE_CODES
from services.identity import domain


class _In(Schema):
    class Meta:
        unknown = EXCLUDE


class StaffSignInIn(_In):
    # only an upper bound here: a sign-in must not say which rule a wrong password breaks,
    # and the bound keeps the hashing cost of a request fixed
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(
        min=1, max=domain.PASSWORD_MAX))


# the bounds here document the field; the other rules need the account's username and
# are checked by staff.py (domain.password_problems)
# "not only spaces" and "not containing the username" are checked in domain.password_problems;
# the pattern (a non-space somewhere) lets the document say the first
_NEW_PASSWORD_LENGTH = [validate.Length(min=domain.PASSWORD_MIN, max=domain.PASSWORD_MAX),
                        validate.Regexp(r"\S", error="must not be only spaces")]
_NEW_PASSWORD_TEXT = {"description": f"{domain.PASSWORD_MIN} to {domain.PASSWORD_MAX} "
                                     "characters, not only spaces, not containing the username"}


class PasswordChangeIn(_In):
    current_password = fields.String(required=True, validate=validate.Length(
        min=1, max=domain.PASSWORD_MAX))
    new_password = fields.String(required=True, validate=_NEW_PASSWORD_LENGTH,
                                 metadata=_NEW_PASSWORD_TEXT)


class PasswordResetIn(_In):
    new_password = fields.String(required=True, validate=_NEW_PASSWORD_LENGTH,
                                 metadata=_NEW_PASSWORD_TEXT)


class PasswordSetOut(Schema):
    status = fields.String()


class StaffIn(_In):
    username = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$", error="3 to 64 letters, digits, dots, hyphens "
        "and underscores, starting with a letter or digit"),
        metadata={"description": "case-insensitive: stored in lower case"})
    display_name = fields.String(required=True, validate=validate.Length(min=2, max=100))
    role = fields.String(required=True, validate=validate.OneOf(
        (domain.FACILITATOR, domain.COMMUNE_ADMIN)))
    province = fields.String(required=True, validate=validate.OneOf(sorted(PROVINCE_CODES)))
    communes = fields.List(
        fields.String(validate=validate.Regexp(r"^[0-9]{5}$", error="5 digits")),
        required=True, validate=validate.Length(min=1, max=domain.MAX_COMMUNES),
        metadata={"description": "communes of `province` (hocvu.reference), none repeated: "
                                 "exactly one for a commune admin"})
    password = fields.String(required=True, validate=_NEW_PASSWORD_LENGTH,
                             metadata=_NEW_PASSWORD_TEXT)

    @validates("username")
    def _username(self, value, **_):
        problems = domain.username_problems(domain.normalize_username(value))
        if problems:
            raise ValidationError(problems)

    @validates_schema(skip_on_field_errors=False)
    def _scope_and_password(self, data, **_):
        # every field at fault in one answer, even when another field failed already
        errors = {}
        if {"role", "province", "communes"} <= set(data):
            errors.update(domain.scope_problems(data["role"], data["province"],
                                                data["communes"]))
        if "password" in data:
            problems = domain.password_problems(
                data["password"], domain.normalize_username(data.get("username", "")))
            if problems:
                errors["password"] = problems
        if errors:
            raise ValidationError(errors)

    @post_load
    def _normalise(self, data, **_):
        data["username"] = domain.normalize_username(data["username"])
        data["display_name"] = " ".join(data["display_name"].split())
        return data


class StaffOut(Schema):
    id = fields.String(attribute="_id")
    subject = fields.Function(lambda account: f"staff:{account['_id']}")
    username = fields.String()
    display_name = fields.String()
    role = fields.String()
    province = fields.String()
    communes = fields.List(fields.String())
    created_at = UtcDateTime()


class StaffPageOut(Schema):
    items = fields.List(fields.Nested(StaffOut))
    next_cursor = fields.String(allow_none=True)


class _PhoneIn(_In):
    phone = fields.String(required=True, validate=validate.Regexp(
        PHONE_PATTERN, error="digits, with an optional + and spaces, dots, dashes or brackets"),
        metadata={"description": "a Vietnamese mobile number (10 digits starting 03, 05, 07, "
                                 "08 or 09; or +84 / 84 and 9 digits)"})

    @validates("phone")
    def _phone(self, value, **_):
        try:
            normalize_phone(value)
        except InvalidPhone as exc:
            raise ValidationError(str(exc)) from None

    @post_load
    def _normalise(self, data, **_):
        data["phone"] = normalize_phone(data["phone"])
        return data


class LearnerCodeIn(_PhoneIn):
    pass


class LearnerTokenIn(_PhoneIn):
    code = fields.String(required=True, validate=validate.Regexp(
        r"^[0-9]{6}$", error="the 6 digits of the code we sent by SMS"))


class CodeSentOut(Schema):
    status = fields.String()
    expires_in = fields.Integer()


class TokenOut(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
