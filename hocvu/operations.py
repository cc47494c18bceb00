"""The four routes every service answers besides its API, defined once:

    GET /api/<service>/health/live    operations only (the edge does not route it)
    GET /api/<service>/health/ready   operations only
    GET /api/<service>/metrics        operations only (Prometheus text)
    GET /api/<service>/openapi.json   anyone: the API a client reaches through the edge

A service class inherits them, `class LessonsService(operations_routes("lessons"))`, and
puts `**OPERATIONS_ACCESS` in its ACCESS table. They read the service's `name`, `store` and
`config` attributes, which every service declares. The operations routes are left out of
the document a client reads (they are documented apart, for operators:
hocvu.openapi.operators_document).
"""
from hocvu import auth, health, metrics, openapi
from hocvu.http import http

OPERATIONS_ACCESS = {
    "health_live": auth.OPERATIONS,
    "health_ready": auth.OPERATIONS,
    "metrics": auth.OPERATIONS,
    "openapi_document": auth.PUBLIC,
}


def operations_routes(service_name: str) -> type:
    """A base class carrying the four routes under `/api/<service_name>/`."""
    prefix = f"/api/{service_name}"

    class OperationsRoutes:
        @http("GET", f"{prefix}/health/live",
              summary="the process answers and can recover by itself (no I/O)",
              answers={200: health.LIVE_ANSWER, 503: health.STUCK_ANSWER})
        def health_live(self, request):
            return health.live(self.name)

        @http("GET", f"{prefix}/health/ready",
              summary="broker and store reachable, every consumer consuming?",
              answers={200: health.READY_ANSWER, 503: health.READY_ANSWER})
        def health_ready(self, request):
            return health.ready(self.store, self.config["AMQP_URI"])

        @http("GET", f"{prefix}/metrics", summary=metrics.SUMMARY, answers=metrics.ANSWERS)
        def metrics(self, request):
            return metrics.response()

        @http("GET", f"{prefix}/openapi.json", summary="this API as an OpenAPI 3 document")
        def openapi_document(self, request):
            return openapi.document(type(self))

    OperationsRoutes.__name__ = OperationsRoutes.__qualname__ = \
        f"{service_name.title()}OperationsRoutes"
    return OperationsRoutes
