"""certificates: issue one certificate per completed course, and let anyone verify it.

HTTP (under /api/certificates/)
    GET  health/live                    operations only (service port)
    GET  health/ready                   broker and store reachable? operations only
    GET  openapi.json
    GET  certificates?enrollment_id=...  or  ?learner_id=...
    GET  verify/<verification_code>     public, no login
Consumes   lessons.course_completed  -> issues the certificate
Publishes  certificate_issued
State      its own database: certificates, counters (serial numbers), outbox, inbox
"""
from nameko.dependency_providers import Config
from pymongo import ASCENDING

from hocvu import health, openapi
from hocvu.clock import utcnow
from hocvu.http import NotFound, ValidationFailed, http
from hocvu.messaging import subscribe
from hocvu.store import ServiceStore, Store
from services.certificates import issuing
from services.certificates.domain import normalize_code
from services.certificates.schemas import CertificateOut, VerificationOut

certificates_out = CertificateOut(many=True)
verification_out = VerificationOut()


def prepare(store: Store) -> None:
    db = store.db
    store.ensure_collections("certificates", "counters")
    db.certificates.create_index("enrollment_id", unique=True)
    db.certificates.create_index("verification_code", unique=True)
    db.certificates.create_index("serial", unique=True)
    db.certificates.create_index([("learner_id", ASCENDING), ("issued_at", ASCENDING)])


class CertificatesService:
    name = "certificates"

    config = Config()
    store = ServiceStore(prepare=prepare)

    @http("GET", "/api/certificates/health/live", summary="the process answers (no I/O)",
          answers={200: "ok"})
    def health_live(self, request):
        return health.live(self.name)

    @http("GET", "/api/certificates/health/ready", summary="broker and store reachable?",
          answers={200: "ok", 503: "broker or store unreachable"})
    def health_ready(self, request):
        return health.ready(self.store, self.config["AMQP_URI"])

    @http("GET", "/api/certificates/openapi.json", summary="this API as an OpenAPI 3 document")
    def openapi_document(self, request):
        return openapi.build(CertificatesService, "hocvu certificates", __doc__)

    @http("GET", "/api/certificates/certificates", summary="certificates of an enrollment or learner",
          query={"enrollment_id": "an enrollment", "learner_id": "a learner"},
          answers={200: CertificateOut(many=True), 400: "neither parameter given"})
    def list_certificates(self, request):
        query = {key: request.args[key] for key in ("enrollment_id", "learner_id")
                 if request.args.get(key)}
        if not query:
            raise ValidationFailed("give enrollment_id or learner_id", {
                "enrollment_id": ["give enrollment_id or learner_id"]})
        found = self.store.db.certificates.find(query).sort("issued_at", ASCENDING)
        return certificates_out.dump(list(found))

    @http("GET", "/api/certificates/verify/<code>", summary="verify a certificate (public)",
          answers={200: VerificationOut, 404: "no certificate has this code"})
    def verify(self, request, code):
        canonical = normalize_code(code)
        certificate = canonical and self.store.db.certificates.find_one(
            {"verification_code": canonical})
        if not certificate:
            raise NotFound("no certificate has this verification code")
        return verification_out.dump(certificate)

    @subscribe("lessons", "course_completed")
    def issue_certificate(self, event):
        verify_url = self.config["PUBLIC_BASE_URL"].rstrip("/") + "/api/certificates/verify/{code}"

        def work(tx):
            tx.claim_event("issue_certificate", event)
            issuing.issue(tx, event.data, event.correlation_id, verify_url, utcnow())

        self.store.transact(work)
