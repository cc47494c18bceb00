"""A nameko service whose event handler does nothing: what nameko itself costs per event.
The count is read from outside, by watching its queue drain (hocvu_tools.bench.ceilings), so the
handler has nothing to record and nothing to slow it down.

    python -m nameko run --config CONFIG hocvu_tools.bench.noop_service
"""
from nameko.events import event_handler

SOURCE = "bench_source"
EVENT_TYPE = "tick"


class BenchNoop:
    name = "bench_noop"

    @event_handler(SOURCE, EVENT_TYPE)
    def tick(self, payload):
        pass
