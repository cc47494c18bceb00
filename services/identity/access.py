"""Who may call identity's routes, and who is calling.

Every route is in the service's ACCESS table. The staff-management routes need a staff
token that this service signed; `staff_caller` reads it from the Authorization header.
(When hocvu.auth's entrypoint check lands, it puts the caller on request.principal and
`staff_caller` becomes a read of it: the one call to swap.)
"""
import jwt

from hocvu.http import ApiError
from services.identity.domain import STAFF_ROLES

PUBLIC = "public"
OPERATIONS = "operations"


def roles(*names: str) -> tuple[str, ...]:
    return ("roles",) + names


class Unauthenticated(ApiError):
    status = 401
    code = "UNAUTHENTICATED"

    def __init__(self, message: str):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status = 403
    code = "FORBIDDEN"


def bearer_token(request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("sign in: this route needs a bearer token")
    return token.strip()


def staff_caller(request, issuer, rule: tuple[str, ...]) -> dict:
    """The staff member calling, as {subject, role, province, communes}, if `rule` admits
    their role; 401 without a valid token, 403 for another role."""
    try:
        claims = issuer.verify(bearer_token(request))
    except jwt.InvalidTokenError:
        raise Unauthenticated("the token is invalid or has expired") from None
    role = claims.get("role")
    if role not in STAFF_ROLES or role not in rule[1:]:
        raise Forbidden("your role may not do this")
    return {"subject": claims["sub"], "role": role, "province": claims.get("province"),
            "communes": list(claims.get("communes") or [])}
