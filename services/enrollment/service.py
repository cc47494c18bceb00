"""enrollment: learners, their enrollments, and enrollment's copy of the catalog.

HTTP (under /api/enrollment/)
    GET  health/live                    operations only (service port)
    GET  health/ready                   broker and store reachable? operations only
    GET  openapi.json
    GET  courses                    the catalog as enrollment knows it (from lessons' events)
    POST enrollments                {"course_id", "learner": {...}} -> 201, 400, 404, 409
    GET  enrollments/<id>
Consumes   lessons.course_published  -> catalog copy
Publishes  learner_enrolled (to lessons, notifications),
           learner_contact_registered (the phone number: to notifications only)
State      its own database: learners, enrollments, catalog, outbox, inbox
"""
import re
import uuid

from nameko.dependency_providers import Config
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from hocvu import health, openapi
from hocvu.cache import TtlCache
from hocvu.clock import utcnow
from hocvu.http import NotFound, http, json_response, load_body
from hocvu.messaging import subscribe
from hocvu.store import ServiceStore, Store
from services.enrollment import enrolling, identity
from services.enrollment.schemas import (CatalogCourseOut, EnrollmentCreatedOut, EnrollmentIn,
                                         EnrollmentOut)

enrollment_in = EnrollmentIn()
created_out = EnrollmentCreatedOut()
enrollment_out = EnrollmentOut()
catalog_out = CatalogCourseOut(many=True)

_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# courses change rarely; another instance's copy may lag by this many seconds
_catalog = TtlCache(seconds=30)


def prepare(store: Store) -> None:
    db = store.db
    store.ensure_collections("learners", "enrollments", "catalog")
    db.learners.create_index("national_id_hash", unique=True)
    db.enrollments.create_index([("learner_id", ASCENDING), ("course_id", ASCENDING)],
                                unique=True)
    db.enrollments.create_index([("commune_code", ASCENDING), ("group", ASCENDING)])


class NationalIdHasher(DependencyProvider):
    """The keyed hash of national IDs; refuses to start without a proper key."""

    def setup(self):
        key = str(self.container.config.get("NATIONAL_ID_HASH_KEY") or "")
        if len(key) < 32:
            raise ConfigurationError(
                "NATIONAL_ID_HASH_KEY must be set to a secret of at least 32 characters")
        self.key = key.encode()

    def get_dependency(self, worker_ctx):
        return lambda national_id: identity.national_id_digest(national_id, self.key)


class EnrollmentService:
    name = "enrollment"

    config = Config()
    store = ServiceStore(prepare=prepare)
    hash_national_id = NationalIdHasher()

    @http("GET", "/api/enrollment/health/live", summary="the process answers (no I/O)",
          answers={200: "ok"})
    def health_live(self, request):
        return health.live(self.name)

    @http("GET", "/api/enrollment/health/ready", summary="broker and store reachable?",
          answers={200: "ok", 503: "broker or store unreachable"})
    def health_ready(self, request):
        return health.ready(self.store, self.config["AMQP_URI"])

    @http("GET", "/api/enrollment/openapi.json", summary="this API as an OpenAPI 3 document")
    def openapi_document(self, request):
        return openapi.build(EnrollmentService, "hocvu enrollment", __doc__)

    @http("GET", "/api/enrollment/courses", summary="the courses enrollment accepts",
          answers={200: CatalogCourseOut(many=True)})
    def list_courses(self, request):
        return catalog_out.dump(self.store.db.catalog.find().sort([("group", 1), ("_id", 1)]))

    @http("POST", "/api/enrollment/enrollments", summary="enroll a learner in a course",
          body=EnrollmentIn, answers={201: EnrollmentCreatedOut, 400: "invalid fields",
                                      404: "unknown course", 409: "already enrolled"})
    def create_enrollment(self, request):
        body = load_body(request, enrollment_in)
        learner = body["learner"]
        national_id_hash = self.hash_national_id(learner["national_id"])
        correlation_id = request.headers.get("X-Correlation-ID", "")
        if not _CORRELATION_ID.match(correlation_id):
            correlation_id = str(uuid.uuid4())

        course = enrolling.course_for(self._find_course, body["course_id"], learner["group"])

        def work(tx):
            return enrolling.enroll(tx, course, learner, national_id_hash, correlation_id,
                                    utcnow())

        try:
            enrollment = self.store.transact(work)
        except DuplicateKeyError:
            # a concurrent request for the same person committed first; this time the
            # transaction sees it and answers 409 or reuses the learner
            enrollment = self.store.transact(work)
        return json_response(created_out.dump(enrollment), 201,
                             {"X-Correlation-ID": correlation_id,
                              "Location": f"/api/enrollment/enrollments/{enrollment['_id']}"})

    def _find_course(self, course_id: str) -> dict | None:
        return _catalog.get(course_id, lambda: self.store.db.catalog.find_one({"_id": course_id}))

    @http("GET", "/api/enrollment/enrollments/<enrollment_id>", summary="one enrollment",
          answers={200: EnrollmentOut, 404: "no such enrollment"})
    def get_enrollment(self, request, enrollment_id):
        enrollment = self.store.db.enrollments.find_one({"_id": enrollment_id})
        if enrollment is None:
            raise NotFound(f"no enrollment {enrollment_id}")
        enrollment["learner"] = self.store.db.learners.find_one({"_id": enrollment["learner_id"]})
        return enrollment_out.dump(enrollment)

    @subscribe("lessons", "course_published")
    def remember_course(self, event):
        def work(tx):
            tx.claim_event("remember_course", event)
            enrolling.remember_course(tx, event.data, event.occurred_at)

        self.store.transact(work)
        _catalog.forget(event.data["course_id"])
