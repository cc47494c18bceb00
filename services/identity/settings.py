"""identity's configuration keys, typed and checked once at start (docs/identity.md,
Configuration).

AUTH_ISSUER and AUTH_AUDIENCE are the kit's keys too (hocvu/auth.py checks the staff routes'
tokens with them); identity names them here as well because it is the issuer they speak of.
The key files JWT_SIGNING_KEYS names and the sealing key are opened when the runtime is
built (dependencies.py).
"""
from marshmallow import ValidationError, fields, validates_schema
from marshmallow.validate import Regexp

from hocvu.settings import SettingsSchema, duration, parsed, secret, text, whole
from services.identity import domain

ISSUER_URL = "must be the URL identity is reached at"


def _required(key: str, problem: str, **kwargs) -> fields.Field:
    return fields.String(data_key=key, required=True, error_messages={"required": problem},
                         **kwargs)


class IdentitySettings(SettingsSchema):
    # tokens
    signing_key_files = _required("JWT_SIGNING_KEYS",
                                  "must name at least one PEM private key file")
    issuer = _required("AUTH_ISSUER", ISSUER_URL, validate=Regexp(r"https?://", error=ISSUER_URL))
    audience = text("AUTH_AUDIENCE", "hocvu")
    staff_token_lifetime = duration("STAFF_TOKEN_MINUTES", 15, unit="minutes", minimum=1)
    learner_token_lifetime = duration("LEARNER_TOKEN_MINUTES", 60, unit="minutes", minimum=1)
    # secrets
    hash_key = secret("IDENTITY_HASH_KEY")
    learner_subject_key = secret("LEARNER_SUBJECT_KEY")
    sealing_public_key = _required("NOTIFICATIONS_SEALING_PUBLIC_KEY",
                                   "must be notifications' public sealing key")
    # staff: the first province admin (none while the username is empty), lockout, argon2id
    bootstrap_username = text("BOOTSTRAP_ADMIN_USERNAME")
    bootstrap_password = text("BOOTSTRAP_ADMIN_PASSWORD")
    bootstrap_province = text("BOOTSTRAP_ADMIN_PROVINCE")
    max_failures = whole("SIGN_IN_MAX_FAILURES", 5)
    failure_window = duration("SIGN_IN_FAILURE_WINDOW_SECONDS", 900, minimum=1)
    lock = duration("SIGN_IN_LOCK_SECONDS", 900, minimum=1)
    hash_time_cost = whole("PASSWORD_HASH_TIME_COST", 3)
    hash_memory_kib = whole("PASSWORD_HASH_MEMORY_KIB", 65536, minimum=8)
    hash_parallelism = whole("PASSWORD_HASH_PARALLELISM", 4)
    # learners' one-time codes
    code_lifetime = duration("CODE_TTL_SECONDS", 300, minimum=1)
    code_attempts = whole("CODE_MAX_ATTEMPTS", 5)
    per_phone = parsed("CODE_LIMITS_PER_PHONE", domain.parse_windows, "1/60,5/3600,10/86400")
    per_address = parsed("CODE_LIMITS_PER_ADDRESS", domain.parse_windows, "30/600,200/86400")

    @validates_schema
    def _memory_for_every_lane(self, values, **kwargs):
        # argon2 refuses less; said here rather than by the first hash at start
        if values["hash_memory_kib"] < 8 * values["hash_parallelism"]:
            raise ValidationError("must be at least 8 KiB per lane (PASSWORD_HASH_PARALLELISM)",
                                  "PASSWORD_HASH_MEMORY_KIB")
