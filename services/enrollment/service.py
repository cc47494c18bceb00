"""enrollment: learners, their enrollments, and enrollment's copy of the catalog.

HTTP (under /api/enrollment/; who may call each route: ACCESS below)
    GET  health/live                    operations only (service port)
    GET  health/ready                   broker and store reachable? operations only
    GET  metrics                        Prometheus text; operations only
    GET  openapi.json
    GET  courses                    the catalog as enrollment knows it (from lessons' events)
    GET  provinces                  the 34 provinces (official list since 1 July 2025)
    GET  communes?province=38       that province's communes and wards, with their names
    POST enrollments                {"course_id", "learner": {...}} -> 201, 400, 403, 404, 409
    GET  enrollments                the caller's own, or those of the communes they cover; paged
    GET  enrollments/<id>
    POST enrollments/<id>/cancel    the learner (their own) or staff covering the commune;
                                    again: the same answer, no second event
    POST enrollments/lookup?course_id=  a class's CSV of national IDs or enrollment ids -> the
                                    enrollments the caller may see (for lessons' attendance)
    POST imports?course_id=[&commune_code=]  a CSV of learners (text/csv) -> 202, a job
    GET  imports/<id>                   the job: status, counts, progress
    GET  imports/<id>/report            its rows that were not enrolled, and why (CSV, vi + en)
Consumes   lessons.course_published  -> catalog copy
Publishes  learner_enrolled (to lessons, notifications),
           learner_contact_registered (the phone number, sealed: to notifications only),
           enrollment_cancelled (to lessons, certificates, notifications)
State      its own database: learners (no phone in clear), enrollments (with the events they
           cause, until relayed), catalog, imports and import_chunks (bulk.py: a job, and its
           rows encrypted until done; kept BULK_RETENTION_DAYS)
Background the import loop (bulk.py), one per process: enrolls the rows of pending chunks
"""

from nameko.dependency_providers import Config
from werkzeug.wrappers import Response

from hocvu import auth, reference
from hocvu.auth import EVERYONE_SIGNED_IN, STAFF
from hocvu.clock import utcnow
from hocvu.http import (ApiError, Conflict, Forbidden, NotFound, ValidationFailed, http,
                        json_response, load_body, load_query)
from hocvu.messaging import subscribe
from hocvu.reference import province_of
from hocvu.settings import Settings
from hocvu.store import ServiceStore
from hocvu.operations import OPERATIONS_ACCESS, operations_routes
from services.enrollment import bulk, domain, lookup, repository
from services.enrollment.dependencies import PersonalDataKeys
from services.enrollment.settings import EnrollmentSettings
from services.enrollment.schemas import (CSV_BODY, CatalogCourseOut, CommunesOut, CommunesQuery,
                                         EnrollmentCreatedOut, EnrollmentIn, EnrollmentOut,
                                         EnrollmentPageOut, EnrollmentsQuery, ImportOut,
                                         ImportQuery, LookupOut, LookupQuery, PlaceOut)

enrollment_in = EnrollmentIn()
created_out = EnrollmentCreatedOut()
enrollment_out = EnrollmentOut()
page_out = EnrollmentPageOut()
catalog_out = CatalogCourseOut(many=True)
enrollments_query = EnrollmentsQuery()
places_out = PlaceOut(many=True)
communes_query = CommunesQuery()
communes_out = CommunesOut()
# the list of units changes by decree, with a release of this service: a day's cache is safe
_REFERENCE_CACHING = {"Cache-Control": "public, max-age=86400"}
import_query = ImportQuery()
import_out = ImportOut()
lookup_query = LookupQuery()
lookup_out = LookupOut()


class AlreadyEnrolled(Conflict):
    code = "ALREADY_ENROLLED"


class ProfileMismatch(Conflict):
    code = "PROFILE_MISMATCH"


class CourseForAnotherGroup(Conflict):
    """The body is valid; the catalog says the course is not for this learner's group (a rule
    on the catalog's state, not on the body's form: 409, as a body's schema cannot state it)."""
    code = "COURSE_FOR_ANOTHER_GROUP"


# how the API answers each refusal of the rules (domain.Refused)
_ANSWERS = {domain.MayNotEnroll: Forbidden, domain.UnknownCourse: NotFound,
            domain.CourseForAnotherGroup: CourseForAnotherGroup,
            domain.AlreadyEnrolled: AlreadyEnrolled, domain.ProfileMismatch: ProfileMismatch}


def _answer(refused: domain.Refused) -> ApiError:
    return _ANSWERS[type(refused)](refused.message, refused.fields, **refused.extra)


class EnrollmentService(operations_routes("enrollment")):
    name = "enrollment"

    ACCESS = {
        **OPERATIONS_ACCESS,
        "list_courses": auth.PUBLIC,
        # the official list of units: public data the frontend's pickers need before sign-in
        "list_provinces": auth.PUBLIC,
        "list_communes": auth.PUBLIC,
        "create_enrollment": auth.roles(*EVERYONE_SIGNED_IN),
        "list_enrollments": auth.roles(*EVERYONE_SIGNED_IN),
        "get_enrollment": auth.roles(*EVERYONE_SIGNED_IN),
        # the learner, or staff covering the enrollment's commune (checked in the handler)
        "cancel_enrollment": auth.roles(*EVERYONE_SIGNED_IN),
        # staff within their communes (a job: its creator, and staff covering its communes)
        "lookup_enrollments": auth.roles(*STAFF),
        "create_import": auth.roles(*STAFF),
        "get_import": auth.roles(*STAFF),
        "get_import_report": auth.roles(*STAFF),
    }

    config = Config()
    settings = Settings(EnrollmentSettings)
    store = ServiceStore(prepare=repository.prepare)
    keys = PersonalDataKeys(store="store")
    imports = bulk.BulkImports(repository.enroll_learner, store="store", keys="keys")

    @http("GET", "/api/enrollment/courses", summary="the courses enrollment accepts",
          answers={200: CatalogCourseOut(many=True)})
    def list_courses(self, request):
        return catalog_out.dump(repository.catalog(self.store.db))

    @http("GET", "/api/enrollment/provinces",
          summary="the 34 provinces since 1 July 2025, by code, with their names",
          answers={200: PlaceOut(many=True)})
    def list_provinces(self, request):
        provinces = [{"code": code, "name": name}
                     for code, name in sorted(reference.provinces().items())]
        return json_response(places_out.dump(provinces), headers=_REFERENCE_CACHING)

    @http("GET", "/api/enrollment/communes",
          summary="a province's communes and wards (official list since 1 July 2025)",
          query=CommunesQuery, answers={200: CommunesOut, 400: "no such province"})
    def list_communes(self, request):
        province = load_query(request, communes_query)["province"]
        communes = sorted(reference.communes_of(province), key=lambda commune: commune.code)
        return json_response(communes_out.dump({
            "province": {"code": province, "name": reference.provinces()[province]},
            "communes": [{"code": c.code, "name": c.name} for c in communes]}),
            headers=_REFERENCE_CACHING)

    @http("POST", "/api/enrollment/enrollments", summary="enroll a learner in a course",
          body=EnrollmentIn, answers={201: EnrollmentCreatedOut, 400: "invalid fields",
                                      403: "not yourself, or outside your communes",
                                      404: "unknown course",
                                      409: "already enrolled, registered with other details, "
                                           "or the course is for another group"})
    def create_enrollment(self, request):
        body = load_body(request, enrollment_in)
        correlation_id = request.correlation_id  # hocvu.logcontext.correlation_id_of
        try:
            enrollment = repository.enroll_learner(self.store, self.keys, request.principal,
                                                   body["course_id"], body["learner"],
                                                   correlation_id)
        except domain.Refused as refused:
            raise _answer(refused) from None
        return json_response(created_out.dump(enrollment), 201,
                             {"X-Correlation-ID": correlation_id,
                              "Location": f"/api/enrollment/enrollments/{enrollment['_id']}"})

    @http("GET", "/api/enrollment/enrollments", summary="enrollments the caller may see",
          query=EnrollmentsQuery, answers={200: EnrollmentPageOut, 400: "invalid filter or page"})
    def list_enrollments(self, request):
        args = load_query(request, enrollments_query)
        return page_out.dump(repository.visible_enrollments(self.store.db, request.principal,
                                                            args))

    @http("GET", "/api/enrollment/enrollments/<enrollment_id>", summary="one enrollment",
          answers={200: EnrollmentOut, 404: "no such enrollment (or not yours to see)"})
    def get_enrollment(self, request, enrollment_id):
        enrollment = self._visible(request.principal, enrollment_id)
        return enrollment_out.dump(repository.with_learner(self.store.db, enrollment))

    @http("POST", "/api/enrollment/enrollments/<enrollment_id>/cancel",
          summary="cancel an enrollment: its lessons stop, no certificate or reminder follows "
                  "(again: the same answer)",
          answers={200: EnrollmentOut, 404: "no such enrollment (or not yours to cancel)"})
    def cancel_enrollment(self, request, enrollment_id):
        caller = request.principal
        enrollment = repository.cancel(self.store.db, self._visible(caller, enrollment_id),
                                       caller, utcnow())
        return enrollment_out.dump(repository.with_learner(self.store.db, enrollment))

    def _visible(self, caller, enrollment_id: str) -> dict:
        """The enrollment if the caller may see it; 404 as if it did not exist otherwise."""
        enrollment = repository.find_visible(self.store.db, enrollment_id, caller)
        if enrollment is None:
            raise NotFound(f"no enrollment {enrollment_id}")
        return enrollment

    @http("POST", "/api/enrollment/enrollments/lookup",
          summary="a class's list of national IDs or enrollment ids -> enrollment ids",
          query=LookupQuery, body=CSV_BODY,
          answers={200: LookupOut, 400: "not a readable CSV, no national_id or enrollment_id "
                                        "column, or more than 2,000 rows",
                   413: "larger than 1 MiB"})
    def lookup_enrollments(self, request):
        args = load_query(request, lookup_query)
        data = bulk.read_upload(request, lookup.MAX_BYTES)
        parsed = bulk.parse_upload(data, lookup.MAX_ROWS, required=())
        if not {"national_id", "enrollment_id"} & set(parsed.columns):
            raise ValidationFailed(
                "the header line needs a national_id (Số CCCD) or enrollment_id column",
                {"_file": ["no national_id or enrollment_id column"]},
                message_vi="dòng tiêu đề cần cột Số CCCD hoặc Mã ghi danh")
        return lookup_out.dump(lookup.resolve(self.store.db, self.keys.national_id_hash,
                                              request.principal, args["course_id"], parsed))

    @http("POST", "/api/enrollment/imports",
          summary="enroll a CSV list of learners in one course, as a job",
          query=ImportQuery, body=CSV_BODY,
          answers={202: ImportOut,
                   400: "unreadable file, missing columns, no rows, or more than 100,000",
                   403: "commune_code outside your communes", 404: "unknown course",
                   413: "larger than BULK_MAX_BYTES (20 MiB)"})
    def create_import(self, request):
        caller = request.principal
        args = load_query(request, import_query)
        commune_code = args.get("commune_code")
        if commune_code and not caller.covers(province_of(commune_code), commune_code):
            raise Forbidden("you may import learners only in the communes you work in",
                            {"commune_code": ["outside your communes"]})
        course = repository.find_course(self.store.db, args["course_id"])
        if course is None:
            raise NotFound(f"no course {args['course_id']}", {"course_id": ["unknown course"]})
        data = bulk.read_upload(request, self.settings.bulk_max_bytes)
        job = self.imports.submit(caller, course, data, commune_code)
        return json_response(import_out.dump(bulk.job_view(job)), 202,
                             {"Location": f"/api/enrollment/imports/{job['_id']}"})

    @http("GET", "/api/enrollment/imports/<import_id>", summary="an import job's progress",
          answers={200: ImportOut, 404: "no such import (or not yours to see)"})
    def get_import(self, request, import_id):
        return import_out.dump(bulk.job_view(self.imports.job_for(request.principal,
                                                                  import_id)))

    @http("GET", "/api/enrollment/imports/<import_id>/report",
          summary="the rows not enrolled and why, as CSV (row, outcome, field, message_vi, "
                  "message_en)",
          answers={200: "text/csv, UTF-8 with a byte-order mark (Excel opens it as is)",
                   404: "no such import (or not yours to see)"})
    def get_import_report(self, request, import_id):
        job = self.imports.job_for(request.principal, import_id)
        return Response(self.imports.report(job), status=200,
                        content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="import-{import_id}-report.csv"'})

    @subscribe("lessons", "course_published")
    def remember_course(self, event):
        repository.remember_course(self.store.db, event.data, event.occurred_at)
