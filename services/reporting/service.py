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
import logging
import threading
import time
from pathlib import Path

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Response

from hocvu import auth
from hocvu.background import WakeableLoop
from hocvu.clock import utcnow
from hocvu.http import NotFound, http, load_body, load_query
from hocvu.messaging import subscribe_batch
from hocvu.reference import communes as commune_register
from hocvu.store import ServiceStore, dependency
from hocvu.operations import OPERATIONS_ACCESS, operations_routes
from services.reporting import domain, queries, repository
from services.reporting.schemas import (CommunesOut, DaysOut, FiguresQuery, TargetIn, TargetOut,
                                        TargetsOut)

log = logging.getLogger(__name__)

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


class Refresher(WakeableLoop):
    """Recomputes the figures of the communes whose facts changed. It keeps them in memory:
    after a restart it recomputes every commune once, which also covers what a crash left.
    It also sweeps every commune each `sweep_seconds`: two instances recomputing one commune
    at once may leave the older result last, and the sweep (which only reads when nothing
    changed) puts it right."""
    name = "reporting refresher"
    poll_seconds = 5.0
    linger_seconds = 0.2  # gather a burst's communes into one round

    def __init__(self, db, active_days: int, sweep_seconds: float):
        super().__init__()
        self.db, self.active_days, self.sweep_seconds = db, active_days, sweep_seconds
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._next_sweep = time.monotonic()

    def mark(self, commune: str | None) -> None:
        if commune:
            with self._lock:
                self._dirty.add(commune)
            self.wake()

    def run_once(self) -> bool:
        with self._lock:
            everything = time.monotonic() >= self._next_sweep
            if everything:
                self._next_sweep = time.monotonic() + self.sweep_seconds
            communes, self._dirty = self._dirty, set()
        if everything:
            communes |= set(repository.known_communes(self.db))
        try:
            repository.refresh(self.db, sorted(communes), self.active_days)
        except Exception:
            with self._lock:  # try them again next round
                self._dirty |= communes
            raise
        with self._lock:
            return bool(self._dirty)


class Figures(DependencyProvider):
    """The refresher of this process, started with the service. `store` names the service's
    ServiceStore attribute."""

    def __init__(self, store: str = "store"):
        self.store_attr = store

    def setup(self):
        self.active_days = int(self.container.config.get("ACTIVE_DAYS", 7))
        self.sweep_seconds = float(self.container.config.get("SWEEP_SECONDS", 1800))

    def start(self):
        store = dependency(self.container, self.store_attr).store
        self.refresher = Refresher(store.db, self.active_days, self.sweep_seconds)
        self.refresher.start(self.container.spawn_managed_thread)

    def stop(self):
        self.refresher.stop()

    def kill(self):
        self.refresher.stop(wait=False)

    def get_dependency(self, worker_ctx):
        return self.refresher


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
            self.store.db, request.principal, args, self._default_target()))

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
        query = request.principal.scope_filter("province_code", "commune_code", "learner_subject")
        items = list(self.store.db.targets.find(query).sort("_id", 1))
        return targets_out.dump({"default_target_rate": self._default_target(), "items": items})

    @http("PUT", "/api/reporting/targets/<commune_code>",
          summary="set a commune's target (a province admin of its province)", body=TargetIn,
          answers={200: TargetOut, 400: "invalid target", 404: "no such commune in the province"})
    def set_target(self, request, commune_code):
        target = load_body(request, target_in)
        commune = commune_register().get(commune_code)
        if commune is None or commune.province_code != request.principal.province:
            raise NotFound(f"no commune {commune_code} in province {request.principal.province}")
        document = {"province_code": commune.province_code, "commune_code": commune_code,
                    "target_rate": target["target_rate"],
                    "adult_population": target["adult_population"], "set_at": utcnow(),
                    "set_by": request.principal.subject}
        self.store.db.targets.replace_one({"_id": commune_code}, document, upsert=True)
        return target_out.dump(document)

    def _default_target(self) -> float:
        return float(self.config.get("DEFAULT_TARGET_RATE", 0.8))

    # --- events ---------------------------------------------------------------------------

    def _record(self, events) -> list:
        """Keep the events' facts once, then fold them in; answers the events kept
        before. The fold runs on a duplicate too: it is idempotent, and it completes a
        first delivery that failed half-way."""
        facts = [domain.fact_of(event.event_type, event.data) for event in events]
        kept_before = repository.retain(self.store.db, events, facts, utcnow())
        for commune in repository.apply_many(
                self.store.db, [(event.event_type, fact) for event, fact in zip(events, facts)]):
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
