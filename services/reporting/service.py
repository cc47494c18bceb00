"""reporting: progress by province, commune, learner group and age band, built only from
the events the other services publish (it reads no other database and calls no service).

HTTP (under /api/reporting/; who may call each route: ACCESS below)
    GET  health/live                    operations only (service port)
    GET  health/ready                   broker and store reachable? operations only
    GET  metrics                        Prometheus text; operations only
    GET  openapi.json
    GET  communes[?province=&commune=&group=&age_band=&from=&to=]   a row per commune, with
         its certification rate against its target, and the totals
    GET  days[?same filters]            the figures of each day (default: the last 30)
    GET  export.csv[?same filters]      a row per commune, day, group and age band
    GET  targets                        the communes' targets in the caller's scope
    PUT  targets/<commune_code>         {"target_rate": 0.8, "adult_population": 12000}
    GET  page/, page/<asset>            the web page for admins (static; it asks the API
                                        above with the signed-in admin's token)
Consumes   enrollment.learner_enrolled, enrollment.enrollment_cancelled,
           lessons.lesson_completed, lessons.course_completed,
           certificates.certificate_issued, certificates.certificate_revoked,
           notifications.sms_outcome
           (each in batches: one insert of the facts, one bulk write of the enrollments)
Publishes  nothing
State      its own database: events (the retained stream of facts, by event_id), enrollments,
           sms, commune_days, commune_totals, province_days (derived: `python -m
           services.reporting.rebuild` recomputes them from events), targets
"""
from pathlib import Path

from nameko.dependency_providers import Config
from werkzeug.wrappers import Response

from hocvu import auth
from hocvu.clock import utcnow
from hocvu.http import NotFound, http, load_body, load_query
from hocvu.messaging import subscribe_batch
from hocvu.operations import OPERATIONS_ACCESS, operations_routes
from hocvu.settings import Settings
from hocvu.store import ServiceStore
from services.reporting import queries, repository
from services.reporting.dependencies import Figures
from services.reporting.schemas import (CommunesOut, DaysOut, FiguresQuery, TargetIn, TargetOut,
                                        TargetsOut)
from services.reporting.settings import ReportingSettings

figures_query = FiguresQuery()
communes_out, days_out = CommunesOut(), DaysOut()
target_in, target_out, targets_out = TargetIn(), TargetOut(), TargetsOut()

STATIC = Path(__file__).with_name("static")
ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
# the page loads only its own files and talks only to this origin's API
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                           "style-src 'self'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache"}
# staff read the figures of their own scope; a learner never (ACCESS below, docs/reporting.md)
READERS = auth.roles(auth.FACILITATOR, auth.COMMUNE_ADMIN, auth.PROVINCE_ADMIN)


class ReportingService(operations_routes("reporting")):
    name = "reporting"

    ACCESS = {
        **OPERATIONS_ACCESS,
        "page_index": auth.PUBLIC,
        "page_asset": auth.PUBLIC,
        "list_communes": READERS,
        "list_days": READERS,
        "export_csv": READERS,
        "list_targets": READERS,
        "set_target": auth.roles(auth.PROVINCE_ADMIN),
    }

    config = Config()
    settings = Settings(ReportingSettings)
    store = ServiceStore(prepare=repository.prepare)
    figures = Figures(store="store")

    # --- the page (static files: they hold no figures, the API gives those) -------------

    @http("GET", "/api/reporting/page/", summary="the progress page for admins (HTML)",
          answers={200: "the page"})
    def page_index(self, request):
        return self._asset("index.html")

    @http("GET", "/api/reporting/page/<name>", summary="a file of the progress page",
          answers={200: "the file", 404: "no such file"})
    def page_asset(self, request, name):
        return self._asset(name)

    @staticmethod
    def _asset(name: str) -> Response:
        if name not in ASSETS:  # only the files listed: no path from the caller is opened
            raise NotFound(f"the page has no file {name}")
        return Response((STATIC / name).read_bytes(), content_type=ASSETS[name],
                        headers=PAGE_HEADERS)

    # --- figures ------------------------------------------------------------------------

    @http("GET", "/api/reporting/communes",
          summary="figures per commune in the caller's scope, with the rate against target",
          query=FiguresQuery, answers={200: CommunesOut, 400: "invalid filter"})
    def list_communes(self, request):
        args = load_query(request, figures_query)
        return communes_out.dump(queries.communes(
            self.store.db, request.principal, args, self.settings.default_target_rate))

    @http("GET", "/api/reporting/days", summary="figures per day in the caller's scope",
          query=FiguresQuery, answers={200: DaysOut, 400: "invalid filter"})
    def list_days(self, request):
        args = load_query(request, figures_query)
        return days_out.dump(queries.days(self.store.db, request.principal, args))

    @http("GET", "/api/reporting/export.csv",
          summary="figures per commune, day, group and age band as CSV",
          query=FiguresQuery, answers={200: "text/csv, UTF-8", 400: "invalid filter"})
    def export_csv(self, request):
        args = load_query(request, figures_query)
        body = queries.export_csv(self.store.db, request.principal, args)
        return Response(body.encode("utf-8"), content_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="hocvu-tien-do.csv"'})

    @http("GET", "/api/reporting/targets", summary="the targets of the communes in scope",
          answers={200: TargetsOut})
    def list_targets(self, request):
        return targets_out.dump({"default_target_rate": self.settings.default_target_rate,
                                 "items": queries.targets(self.store.db, request.principal)})

    @http("PUT", "/api/reporting/targets/<commune_code>",
          summary="set a commune's target (a province admin of its province)", body=TargetIn,
          answers={200: TargetOut, 400: "invalid target", 404: "no such commune in the province"})
    def set_target(self, request, commune_code):
        target = load_body(request, target_in)
        return target_out.dump(repository.set_target(self.store.db, request.principal,
                                                     commune_code, target, utcnow()))

    # --- events ---------------------------------------------------------------------------

    def _record(self, events) -> list:
        """The events recorded (repository.record); answers those kept before."""
        kept_before, communes = repository.record(self.store.db, events, utcnow())
        for commune in communes:
            self.figures.mark(commune)
        return kept_before

    @subscribe_batch("enrollment", "learner_enrolled")
    def count_enrollment(self, events):
        return self._record(events)

    @subscribe_batch("enrollment", "enrollment_cancelled")
    def count_cancellation(self, events):
        return self._record(events)

    @subscribe_batch("lessons", "lesson_completed")
    def count_lesson(self, events):
        return self._record(events)

    @subscribe_batch("lessons", "course_completed")
    def count_course_completion(self, events):
        return self._record(events)

    @subscribe_batch("certificates", "certificate_issued")
    def count_certificate(self, events):
        return self._record(events)

    @subscribe_batch("certificates", "certificate_revoked")
    def count_revocation(self, events):
        return self._record(events)

    @subscribe_batch("notifications", "sms_outcome")
    def count_sms(self, events):
        return self._record(events)
