"""Who calls: the learner's subject, shared by identity (which issues it) and enrollment.

(The verification of tokens and the access rules land here from the security work on
main; this branch needs only the subject.)
"""
import hashlib
import hmac


def learner_subject(phone_e164: str, key: bytes) -> str:
    """A learner's stable, opaque `sub`: a keyed hash of their E.164 phone number."""
    return "learner:" + hmac.new(key, phone_e164.encode("ascii"), hashlib.sha256).hexdigest()[:32]
