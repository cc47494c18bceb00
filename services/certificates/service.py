"""certificates: issue one certificate per completed course, and let anyone verify it.

HTTP (under /api/certificates/; who may call each route: ACCESS below)
    GET  health/live                    operations only (service port)
    GET  health/ready                   broker and store reachable? operations only
    GET  metrics                        Prometheus text; operations only
    GET  openapi.json
    GET  certificates[?enrollment_id=|learner_id=]  the caller's own or their communes'; paged
    GET  certificates/<certificate_id>/pdf     the certificate as a PDF (learner, staff in scope)
    POST certificates/<certificate_id>/revoke  {"reason"}: a province admin, their province
    GET  verify/<verification_code>     public, no login; a made-up code (bad signature) is
                                        refused without a store lookup
Consumes   lessons.course_completed         -> issues the certificate (not after a cancellation)
           enrollment.enrollment_cancelled  -> notes it; revokes a certificate of a course
                                               completed after it (cancellations.py)
Publishes  certificate_issued, certificate_revoked
State      its own database: certificates (each with the event it caused, until relayed; the
           learner's name: personal data), counters (serial numbers), cancellations
           (enrollment id and time only)
Config     CERTIFICATE_CODE_KEY (required; comma-separated for rotation), PUBLIC_BASE_URL
"""
from eventlet import tpool
from nameko.dependency_providers import Config
from werkzeug.wrappers import Response

from hocvu import auth
from hocvu.auth import EVERYONE_SIGNED_IN
from hocvu.clock import utcnow
from hocvu.http import http, load_body, load_query
from hocvu.messaging import subscribe, subscribe_batch
from hocvu.operations import OPERATIONS_ACCESS, operations_routes
from hocvu.settings import Settings
from hocvu.store import ServiceStore
from services.certificates import cancellations, pdf, repository
from services.certificates.dependencies import VerificationCodes
from services.certificates.domain import display_code
from services.certificates.schemas import (CertificateOut, CertificatePageOut, CertificatesQuery,
                                           RevokeIn, VerificationOut)
from services.certificates.settings import CertificatesSettings

page_out = CertificatePageOut()
certificate_out = CertificateOut()
verification_out = VerificationOut()
certificates_query = CertificatesQuery()
revoke_in = RevokeIn()


class CertificatesService(operations_routes("certificates")):
    name = "certificates"

    ACCESS = {
        **OPERATIONS_ACCESS,
        "list_certificates": auth.roles(*EVERYONE_SIGNED_IN),
        # the learner, or staff whose communes cover theirs (checked in the handler)
        "certificate_pdf": auth.roles(*EVERYONE_SIGNED_IN),
        # a province admin of the certificate's province (checked in the handler)
        "revoke_certificate": auth.roles(auth.PROVINCE_ADMIN),
        "verify": auth.PUBLIC,
    }

    config = Config()
    settings = Settings(CertificatesSettings)
    store = ServiceStore(prepare=repository.prepare)
    codes = VerificationCodes()

    @http("GET", "/api/certificates/certificates",
          summary="certificates the caller may see: their own, or their communes'",
          query=CertificatesQuery, answers={200: CertificatePageOut, 400: "invalid filter or page"})
    def list_certificates(self, request):
        args = load_query(request, certificates_query)
        return page_out.dump(repository.page(self.store.db, request.principal, args))

    @http("GET", "/api/certificates/certificates/<certificate_id>/pdf",
          summary="the certificate as a PDF, in Vietnamese, with a QR code to verify it",
          answers={200: "application/pdf: the certificate, one A4 page",
                   404: "no such certificate (or not yours to see)",
                   409: "the certificate was revoked"})
    def certificate_pdf(self, request, certificate_id):
        certificate = repository.printable(self.store.db, certificate_id, request.principal)
        # a few hundred milliseconds of CPU (fonts): in a thread, so that the other requests
        # this process serves meanwhile are not held up
        document = tpool.execute(
            pdf.render, certificate, display_code(certificate["verification_code"]),
            self._verify_url().format(code=certificate["verification_code"]))
        # the learner's name: personal data, kept out of shared caches
        return Response(document, content_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="{certificate["serial"]}.pdf"',
            "Cache-Control": "private, no-store"})

    @http("POST", "/api/certificates/certificates/<certificate_id>/revoke",
          summary="revoke a certificate, saying why (again: no change)", body=RevokeIn,
          answers={200: CertificateOut, 400: "no reason given",
                   403: "only a province admin revokes",
                   404: "no such certificate in your province"})
    def revoke_certificate(self, request, certificate_id):
        reason = load_body(request, revoke_in)["reason"]
        caller = request.principal

        certificate = repository.find_for(self.store.db, certificate_id, caller)
        return certificate_out.dump(repository.revoke(self.store.db, certificate, reason,
                                                      caller.subject, utcnow()))

    @http("GET", "/api/certificates/verify/<code>", summary="verify a certificate (public)",
          answers={200: VerificationOut, 404: "no certificate has this code"})
    def verify(self, request, code):
        # a code whose signature is wrong never reaches the store (domain.py)
        canonical = self.codes.worth_looking_up(code)
        return verification_out.dump(repository.by_code(self.store.db, canonical))

    def _verify_url(self) -> str:
        return self.settings.public_base_url.rstrip("/") + "/api/certificates/verify/{code}"

    @subscribe_batch("lessons", "course_completed")
    def issue_certificate(self, events):
        already = repository.issue_many(
            self.store, [(event.data, event.correlation_id) for event in events],
            self._verify_url(), self.codes.new_code, utcnow())
        # a cancellation noted while these issued (its handler found no certificate yet)
        cancellations.recheck(self.store.db, [event.data["enrollment_id"] for event in events],
                              utcnow())
        return [events[position] for position in already]

    @subscribe("enrollment", "enrollment_cancelled")
    def note_cancellation(self, event):
        # two documents, the note first: a redelivery after a crash between them finds the
        # note already there and still revokes (the revocation is conditional on the status)
        cancellations.note(self.store.db, event.data, utcnow())
        cancellations.revoke_if_completed_after(self.store.db, event.data, utcnow())
