"""certificates: issue one certificate per completed course, and let anyone verify it.

HTTP (under /api/certificates/; who may call each route: ACCESS below)
    GET  health/live                    operations only (service port)
    GET  health/ready                   broker and store reachable? operations only
    GET  metrics                        Prometheus text; operations only
    GET  openapi.json
    GET  certificates[?enrollment_id=|learner_id=]  the caller's own or their communes'; paged
    GET  verify/<verification_code>     public, no login
Consumes   lessons.course_completed  -> issues the certificate
Publishes  certificate_issued
State      its own database: certificates (each with the event it caused, until relayed),
           counters (serial numbers)
"""
from nameko.dependency_providers import Config
from pymongo import ASCENDING

from hocvu import auth, health, metrics, openapi, pagination
from hocvu.auth import EVERYONE_SIGNED_IN
from hocvu.clock import utcnow
from hocvu.http import NotFound, http, load_query
from hocvu.messaging import subscribe
from hocvu.store import ServiceStore, Store
from services.certificates import issuing
from services.certificates.domain import normalize_code
from services.certificates.schemas import CertificatePageOut, CertificatesQuery, VerificationOut

page_out = CertificatePageOut()
verification_out = VerificationOut()
certificates_query = CertificatesQuery()


def prepare(store: Store) -> None:
    db = store.db
    store.ensure_collections("certificates", "counters")
    db.certificates.create_index("enrollment_id", unique=True)
    db.certificates.create_index("verification_code", unique=True)
    db.certificates.create_index("serial", unique=True)
    db.certificates.create_index([("learner_id", ASCENDING), ("issued_at", ASCENDING)])
    db.certificates.create_index([("commune_code", ASCENDING), ("issued_at", ASCENDING)])
    db.certificates.create_index([("learner_subject", ASCENDING), ("issued_at", ASCENDING)])


class CertificatesService:
    name = "certificates"

    ACCESS = {
        "health_live": auth.OPERATIONS,
        "health_ready": auth.OPERATIONS,
        "metrics": auth.OPERATIONS,
        "openapi_document": auth.PUBLIC,
        "list_certificates": auth.roles(*EVERYONE_SIGNED_IN),
        "verify": auth.PUBLIC,
    }

    config = Config()
    store = ServiceStore(prepare=prepare)

    @http("GET", "/api/certificates/health/live", summary="the process answers (no I/O)",
          answers={200: health.LIVE_ANSWER})
    def health_live(self, request):
        return health.live(self.name)

    @http("GET", "/api/certificates/health/ready", summary="broker and store reachable?",
          answers={200: health.READY_ANSWER, 503: health.READY_ANSWER})
    def health_ready(self, request):
        return health.ready(self.store, self.config["AMQP_URI"])

    @http("GET", "/api/certificates/metrics", summary=metrics.SUMMARY, answers=metrics.ANSWERS)
    def metrics(self, request):
        return metrics.response()

    @http("GET", "/api/certificates/openapi.json", summary="this API as an OpenAPI 3 document")
    def openapi_document(self, request):
        return openapi.document(CertificatesService)

    @http("GET", "/api/certificates/certificates",
          summary="certificates the caller may see: their own, or their communes'",
          query=CertificatesQuery, answers={200: CertificatePageOut, 400: "invalid filter or page"})
    def list_certificates(self, request):
        args = load_query(request, certificates_query)
        page = pagination.scoped_page(self.store.db.certificates, request.principal, args,
                                      ("enrollment_id", "learner_id"), "issued_at")
        return page_out.dump(page)

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

        issuing.issue(self.store, event.data, event.correlation_id, verify_url, utcnow())
