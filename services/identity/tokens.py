"""Access tokens (JWT) as every hocvu service verifies them (see docs/identity.md).

Claims: iss, aud, sub, iat, exp, jti, role; staff add province, communes and name;
learners add phone_number and phone_number_verified (the OIDC standard claims).
"""
import uuid
from datetime import datetime, timedelta

import jwt

from services.identity.keys import SigningKey, jwks

LEARNER = "learner"
CLAIMS = ("iss", "aud", "sub", "iat", "exp", "jti", "role", "province", "communes", "name",
          "phone_number", "phone_number_verified")


class Issuer:
    def __init__(self, keyring: list[SigningKey], issuer: str, audience: str,
                 staff_lifetime: timedelta, learner_lifetime: timedelta):
        self.keyring = keyring
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.staff_lifetime = staff_lifetime
        self.learner_lifetime = learner_lifetime

    @property
    def signing_key(self) -> SigningKey:
        return self.keyring[0]

    def _sign(self, subject: str, lifetime: timedelta, now: datetime, claims: dict) -> dict:
        payload = {"iss": self.issuer, "aud": self.audience, "sub": subject,
                   "iat": int(now.timestamp()), "exp": int((now + lifetime).timestamp()),
                   "jti": uuid.uuid4().hex, **claims}
        key = self.signing_key
        token = jwt.encode(payload, key.private_key, algorithm=key.algorithm,
                           headers={"kid": key.kid, "typ": "JWT"})
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": int(lifetime.total_seconds())}

    def staff_token(self, account: dict, now: datetime) -> dict:
        claims = {"role": account["role"], "province": account["province"],
                  "name": account["display_name"]}
        if account.get("communes"):
            claims["communes"] = list(account["communes"])
        return self._sign(f"staff:{account['_id']}", self.staff_lifetime, now, claims)

    def learner_token(self, subject: str, phone_e164: str, now: datetime) -> dict:
        return self._sign(subject, self.learner_lifetime, now, {
            "role": LEARNER, "phone_number": phone_e164, "phone_number_verified": True})

    def verify(self, token: str) -> dict:
        """The claims of a token this issuer signed with one of its current keys.

        Raises jwt.InvalidTokenError. The algorithm comes from our key, never the token."""
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in self.keyring if k.kid == kid), None)
        if key is None:
            raise jwt.InvalidTokenError("unknown key id")
        return jwt.decode(token, key.private_key.public_key(), algorithms=[key.algorithm],
                          audience=self.audience, issuer=self.issuer,
                          options={"require": ["iss", "aud", "sub", "iat", "exp"]})

    def jwks(self) -> dict:
        return jwks(self.keyring)

    def discovery(self) -> dict:
        """OpenID Connect discovery metadata, limited to what this issuer really offers."""
        base = self.issuer
        return {
            "issuer": base,
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "token_endpoint": f"{base}/learners/token",
            "staff_sign_in_endpoint": f"{base}/staff/sign-in",
            "learner_code_endpoint": f"{base}/learners/code",
            "learner_token_endpoint": f"{base}/learners/token",
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({k.algorithm for k in self.keyring}),
            "token_endpoint_auth_methods_supported": ["none"],
            "claims_supported": list(CLAIMS),
        }
