"""Who is calling: bearer tokens verified locally, and the rules every route declares.

Tokens are JWTs from the issuer in configuration (AUTH_ISSUER, our identity service or a
province's own OpenID Connect provider), checked against its published keys (AUTH_JWKS_URL):
the signing key is found by the token's `kid` in the cached key set (refetched when an unknown
`kid` arrives, which is how a rotated key is picked up), and the algorithm is the key's own,
never the one the token names. `iss`, `aud`, `sub`, `iat` and `exp` are required.

Each service class declares who may call each of its routes in one table,
`ACCESS = {method name: rule}` (hocvu.http refuses to start a route the table does not name):
    PUBLIC       anyone, no token (the catalog, certificate verification, sign-in)
    OPERATIONS   no token at the service; the edge never routes it (health)
    GATEWAY      the SMS gateway's callbacks, signed with a shared secret (hocvu.signatures)
    roles(...)   a valid token with one of these roles
Whether a staff member's communes cover a record, or a learner owns it, depends on the record:
handlers ask the Principal (`may_see`, `covers`, `scope_filter`), and a record out of scope
answers 404, as if it did not exist.
"""
import hashlib
import hmac
import logging
from dataclasses import dataclass

import jwt
from jwt import PyJWKClient

log = logging.getLogger(__name__)

LEARNER, FACILITATOR, COMMUNE_ADMIN, PROVINCE_ADMIN = (
    "learner", "facilitator", "commune_admin", "province_admin")
ROLES = (LEARNER, FACILITATOR, COMMUNE_ADMIN, PROVINCE_ADMIN)
STAFF = (FACILITATOR, COMMUNE_ADMIN, PROVINCE_ADMIN)
EVERYONE_SIGNED_IN = ROLES


class Unauthenticated(Exception):
    """No token, or one we cannot trust (expired, foreign issuer, bad signature): 401."""


class Forbidden(Exception):
    """A trusted caller whose role or scope does not allow this: 403."""


def learner_subject(phone_e164: str, key: bytes) -> str:
    """A learner's pseudonymous subject: a keyed hash of their phone number, so identity (which
    signs them in) and enrollment (which records who enrolled) name the same person without the
    number itself travelling in tokens' `sub`, events or logs."""
    return "learner:" + hmac.new(key, phone_e164.encode("ascii"), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    province: str | None = None
    communes: frozenset = frozenset()
    phone: str | None = None          # learners: the verified number they signed in with
    issuer: str = ""

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    def covers(self, province_code: str | None, commune_code: str | None) -> bool:
        """Does this staff member act for that commune?"""
        if self.role == PROVINCE_ADMIN:
            return bool(self.province) and province_code == self.province
        if self.role in (FACILITATOR, COMMUNE_ADMIN):
            in_province = not self.province or province_code is None \
                or province_code == self.province
            return in_province and commune_code in self.communes
        return False

    def owns(self, subject: str | None) -> bool:
        return self.role == LEARNER and bool(subject) and subject == self.subject

    def may_see(self, province_code: str | None, commune_code: str | None,
                subject: str | None) -> bool:
        """A record of a learner (`subject`) in a commune: is it this caller's to see?"""
        return self.owns(subject) if self.role == LEARNER else self.covers(province_code,
                                                                           commune_code)

    def scope_filter(self, province_field: str, commune_field: str, subject_field: str) -> dict:
        """A store filter matching exactly the records this caller may see."""
        if self.role == LEARNER:
            return {subject_field: self.subject}
        if self.role == PROVINCE_ADMIN:
            return {province_field: self.province}
        scope = {commune_field: {"$in": sorted(self.communes)}}
        if self.province:
            scope[province_field] = self.province
        return scope


# --- rules -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    kind: str                        # public, operations, gateway, roles
    roles: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "roles":
            return "signed in as " + ", ".join(self.roles)
        return {"public": "anyone, no token", "operations": "operations, on the service port",
                "gateway": "the SMS gateway, signed"}[self.kind]


PUBLIC = Rule("public")
OPERATIONS = Rule("operations")
GATEWAY = Rule("gateway")


def roles(*allowed: str) -> Rule:
    unknown = set(allowed) - set(ROLES)
    if unknown or not allowed:
        raise ValueError(f"unknown roles {sorted(unknown)}; known: {ROLES}")
    return Rule("roles", tuple(allowed))


# --- verification ----------------------------------------------------------------------

class TokenVerifier:
    """Checks bearer tokens against the configured issuer's key set.

    Config: AUTH_ISSUER, AUTH_JWKS_URL, AUTH_AUDIENCE (default hocvu),
    AUTH_JWKS_CACHE_SECONDS (300), AUTH_LEEWAY_SECONDS (30), and the names of the claims
    that carry the role, province and communes (AUTH_ROLE_CLAIM, AUTH_PROVINCE_CLAIM,
    AUTH_COMMUNES_CLAIM), so another provider's tokens fit without a code change.
    """

    def __init__(self, config: dict):
        self.issuer = _required(config, "AUTH_ISSUER")
        self.audience = str(config.get("AUTH_AUDIENCE") or "hocvu")
        self.leeway = float(config.get("AUTH_LEEWAY_SECONDS", 30))
        self.role_claim = str(config.get("AUTH_ROLE_CLAIM") or "role")
        self.province_claim = str(config.get("AUTH_PROVINCE_CLAIM") or "province")
        self.communes_claim = str(config.get("AUTH_COMMUNES_CLAIM") or "communes")
        # the key set is cached, not each key: a key dropped from the set (compromised,
        # retired) stops verifying within AUTH_JWKS_CACHE_SECONDS
        self.keys = PyJWKClient(_required(config, "AUTH_JWKS_URL"), cache_keys=False,
                                lifespan=float(config.get("AUTH_JWKS_CACHE_SECONDS", 300)),
                                timeout=5)

    def principal(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        try:
            key = self.keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, key.key, algorithms=[key.algorithm_name], audience=self.audience,
                issuer=self.issuer, leeway=self.leeway,
                options={"require": ["iss", "aud", "sub", "iat", "exp"]})
        except jwt.PyJWKClientConnectionError as exc:
            # we cannot tell good tokens from bad ones: say so rather than 401 everyone
            raise KeysUnavailable(str(exc)) from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise Unauthenticated(f"token refused: {exc}") from None
        return self._principal_from(claims)

    def _principal_from(self, claims: dict) -> Principal:
        role = claims.get(self.role_claim)
        if role not in ROLES:
            raise Unauthenticated(f"token has no known role in claim {self.role_claim!r}")
        communes = claims.get(self.communes_claim) or []
        if not isinstance(communes, list) or not all(isinstance(c, str) for c in communes):
            raise Unauthenticated(f"claim {self.communes_claim!r} must be a list of codes")
        province = claims.get(self.province_claim)
        if role == LEARNER and not (claims.get("phone_number") and
                                    claims.get("phone_number_verified") is True):
            raise Unauthenticated("a learner's token must carry a verified phone_number")
        if role == PROVINCE_ADMIN and not province:
            raise Unauthenticated("a province admin's token must name the province")
        return Principal(subject=str(claims["sub"]), role=role,
                         province=str(province) if province else None,
                         communes=frozenset(communes), phone=claims.get("phone_number"),
                         issuer=claims["iss"])


class KeysUnavailable(Exception):
    """The issuer's key set cannot be fetched: 503, not 401."""


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("sign in first: send Authorization: Bearer <token>")
    return token.strip()


def _required(config: dict, name: str) -> str:
    value = str(config.get(name) or "").strip()
    if not value:
        from nameko.exceptions import ConfigurationError
        raise ConfigurationError(f"{name} must be set (see docs/configuration.md)")
    return value


def authorize(rule: Rule, principal: Principal | None) -> None:
    """Raise unless `principal` may call a route with `rule` (tokens already verified)."""
    if rule.kind != "roles":
        return
    if principal is None:
        raise Unauthenticated("sign in first: send Authorization: Bearer <token>")
    if principal.role not in rule.roles:
        raise Forbidden(f"a {principal.role} may not do this")

