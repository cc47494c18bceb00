"""identity: who is who. Issues the tokens every service verifies; staff accounts; learners'
sign-in with a phone number and a one-time code sent by SMS.

HTTP (under /api/identity/)                                     who may call
    GET  health/live                                            operations (no I/O)
    GET  health/ready                                           operations (broker, store)
    GET  metrics                                                Prometheus text; operations only
    GET  openapi.json                                           public
    GET  .well-known/openid-configuration                       public
    GET  .well-known/jwks.json                                  public (the verifying keys)
    POST staff/sign-in      {username, password} -> token       public (lockout, 429)
    POST staff              create an account in your scope     province_admin, commune_admin
    GET  staff?limit&cursor accounts in your scope (paged)      province_admin, commune_admin
    POST staff/password     {current_password, new_password}    any staff (their own; a wrong
                                                                current password counts
                                                                toward the lockout)
    POST staff/<username>/password  {new_password}              province_admin, commune_admin
                            reset an account in your scope      (404 outside it); clears
                                                                its lockout
    POST learners/code      {phone} -> SMS with a code          public (rate-limited, 429)
    POST learners/token     {phone, code} -> token              public (5 attempts per code)
Consumes   nothing
Publishes  sign_in_code_requested (phone and code sealed for notifications)
State      its own database: staff (argon2id password hashes, password_changed_at,
           password_reset_by), sign_in_attempts (lockout, by keyed hash of the username),
           sign_in_codes (keyed hashes only, with the sealed event that sends each code until
           it is relayed), rate_limits (by keyed hash of phone / client address)
Config     keys and secrets: JWT_SIGNING_KEYS, IDENTITY_HASH_KEY, LEARNER_SUBJECT_KEY,
           NOTIFICATIONS_SEALING_PUBLIC_KEY; see docs/identity.md
"""
from nameko.dependency_providers import Config

from hocvu import auth, pagination
from hocvu.auth import PUBLIC, learner_subject
from hocvu.clock import utcnow
from hocvu.http import Forbidden, http, load_body, load_query
from hocvu.operations import OPERATIONS_ACCESS, operations_routes
from hocvu.settings import Settings
from services.identity import domain, repository
from services.identity.dependencies import IdentityRuntime, IdentityStore
from services.identity.schemas import (CodeSentOut, LearnerCodeIn, LearnerTokenIn,
                                       PasswordChangeIn, PasswordResetIn, PasswordSetOut,
                                       StaffIn, StaffOut, StaffPageOut, StaffSignInIn,
                                       TokenOut)
from services.identity.settings import IdentitySettings

sign_in_in, staff_in = StaffSignInIn(), StaffIn()
code_in, token_in = LearnerCodeIn(), LearnerTokenIn()
change_in, reset_in = PasswordChangeIn(), PasswordResetIn()
staff_out, page_out = StaffOut(), StaffPageOut()
page_query = pagination.PageQuery()
ADMINS = auth.roles(auth.PROVINCE_ADMIN, auth.COMMUNE_ADMIN)
ANY_STAFF = auth.roles(*auth.STAFF)


def _staff(principal: auth.Principal) -> dict:
    return {"subject": principal.subject, "role": principal.role,
            "province": principal.province, "communes": sorted(principal.communes)}


def _account_id(principal: auth.Principal) -> str | None:
    """The account of a token identity issued; None for another issuer's subject."""
    kind, _, account_id = principal.subject.partition(":")
    return account_id if kind == "staff" and account_id else None


class IdentityService(operations_routes("identity")):
    name = "identity"

    # who may call each route (hocvu.http checks it before the handler runs)
    ACCESS = {
        **OPERATIONS_ACCESS,
        "openid_configuration": PUBLIC, "jwks": PUBLIC,
        "staff_sign_in": PUBLIC, "learner_code": PUBLIC, "learner_token": PUBLIC,
        "create_staff": ADMINS, "list_staff": ADMINS,
        "change_own_password": ANY_STAFF, "reset_password": ADMINS,
    }

    config = Config()
    settings = Settings(IdentitySettings)
    runtime = IdentityRuntime()
    store = IdentityStore(prepare=repository.prepare, runtime="runtime")

    @http("GET", "/api/identity/.well-known/openid-configuration",
          summary="OpenID Connect discovery: issuer, JWKS, endpoints, claims")
    def openid_configuration(self, request):
        return self.runtime.issuer.discovery()

    @http("GET", "/api/identity/.well-known/jwks.json",
          summary="the public keys tokens are verified with")
    def jwks(self, request):
        return self.runtime.issuer.jwks()

    @http("POST", "/api/identity/staff/sign-in", summary="staff sign-in: a 15-minute token",
          body=StaffSignInIn, answers={200: TokenOut, 400: "invalid body",
                                       401: "wrong username or password",
                                       429: "too many failed sign-ins (Retry-After)"})
    def staff_sign_in(self, request):
        body = load_body(request, sign_in_in)
        now = utcnow()
        account = repository.sign_in(self.store, self.runtime.passwords, self.runtime.lockout,
                                     self.runtime.hash_key, body["username"], body["password"],
                                     now)
        return self.runtime.issuer.staff_token(account, now)

    @http("POST", "/api/identity/staff", summary="create a staff account in your scope",
          body=StaffIn, answers={201: StaffOut, 400: "invalid account", 401: "no valid token",
                                 403: "outside your scope", 409: "username taken"})
    def create_staff(self, request):
        caller = _staff(request.principal)
        data = load_body(request, staff_in)
        refusal = domain.creation_refusal(caller, data["role"], data["province"],
                                          data["communes"])
        if refusal:
            raise Forbidden(refusal)
        account = repository.create(self.store, self.runtime.passwords, caller, data, utcnow())
        return 201, staff_out.dump(account)

    @http("GET", "/api/identity/staff", summary="staff accounts in your scope, oldest first",
          query=pagination.PageQuery,
          answers={200: StaffPageOut, 400: "invalid page", 401: "no valid token",
                   403: "not an admin"})
    def list_staff(self, request):
        caller = _staff(request.principal)
        scope = domain.visible_staff(caller)
        if scope is None:
            raise Forbidden("your role may not list accounts")
        limit, after = pagination.page_request(load_query(request, page_query))
        return page_out.dump(repository.page(self.store, scope, limit, after))

    @http("POST", "/api/identity/staff/password", summary="change your own password",
          body=PasswordChangeIn,
          answers={200: PasswordSetOut, 400: "invalid body or unacceptable new password",
                   401: "no valid token (UNAUTHENTICATED), or the current password is wrong "
                        "(INVALID_CREDENTIALS)",
                   404: "your account is not kept by identity (another sign-in provider)",
                   429: "too many failed sign-ins (Retry-After)"})
    def change_own_password(self, request):
        body = load_body(request, change_in)
        repository.change_password(self.store, self.runtime.passwords, self.runtime.lockout,
                                   self.runtime.hash_key, _account_id(request.principal),
                                   body["current_password"], body["new_password"], utcnow())
        # tokens issued before stay valid until they expire (docs/identity.md says why)
        return {"status": "changed"}

    @http("POST", "/api/identity/staff/<username>/password",
          summary="set a new password on an account in your scope", body=PasswordResetIn,
          answers={200: PasswordSetOut, 400: "invalid body or unacceptable new password",
                   401: "no valid token", 403: "not an admin, or an account you may not reset",
                   404: "no such account in your scope"})
    def reset_password(self, request, username):
        body = load_body(request, reset_in)
        repository.reset_password(self.store, self.runtime.passwords, self.runtime.hash_key,
                                  _staff(request.principal), username, body["new_password"],
                                  utcnow())
        return {"status": "reset"}

    @http("POST", "/api/identity/learners/code", summary="text a sign-in code to a phone",
          body=LearnerCodeIn, answers={202: CodeSentOut, 400: "not a Vietnamese mobile number",
                                       429: "asked too often (Retry-After)"})
    def learner_code(self, request):
        body = load_body(request, code_in)
        policy = self.runtime.codes
        address = domain.client_address(request.headers, request.remote_addr)
        repository.request_code(self.store, policy, body["phone"], address, utcnow(),
                                request.correlation_id)
        return 202, {"status": "sent", "expires_in": int(policy.lifetime.total_seconds())}

    @http("POST", "/api/identity/learners/token", summary="exchange the code for a token",
          body=LearnerTokenIn, answers={200: TokenOut, 400: "invalid body",
                                        401: "wrong, used or expired code (INVALID_CODE)"})
    def learner_token(self, request):
        body = load_body(request, token_in)
        now = utcnow()
        repository.redeem_code(self.store, self.runtime.codes, body["phone"], body["code"], now)
        subject = learner_subject(body["phone"], self.runtime.learner_subject_key)
        return self.runtime.issuer.learner_token(subject, body["phone"], now)
