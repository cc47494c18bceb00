"""reporting's dependency provider: the loop that keeps each commune's figures up to date
in this process."""
import threading
import time

from nameko.extensions import DependencyProvider

from hocvu import metrics
from hocvu.background import WakeableLoop
from hocvu.settings import settings_of
from hocvu.store import dependency
from services.reporting import repository


class Refresher(WakeableLoop):
    """Recomputes the figures of the communes whose facts changed. It keeps them in memory:
    after a restart it recomputes every commune once, which also covers what a crash left.
    It also sweeps every commune each `sweep_seconds`: two instances recomputing one commune
    at once may leave the older result last, and the sweep (which only reads when nothing
    changed) puts it right."""
    name = "reporting.refresher"
    poll_seconds = 5.0
    # a round's reads grow with the communes' size: on a province's whole campaign a round
    # may take seconds, and the next one waits long enough that rounds hold at most this
    # share of the time (the figures then follow within ten rounds' time, not one second)
    busy_share = 0.1

    def __init__(self, db, active_days: int, sweep_seconds: float, refresh_seconds: float,
                 monotonic=time.monotonic):
        super().__init__()
        self.monotonic = monotonic
        self.db, self.active_days, self.sweep_seconds = db, active_days, sweep_seconds
        # a round reads every fact of each commune it recomputes: during a burst, one round
        # per `refresh_seconds` whatever the pace of events, so the store's work grows with
        # the time figures take to follow, not with the events (each round gathers them all)
        self.refresh_seconds = self.linger_seconds = refresh_seconds
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._next_sweep = self.monotonic()
        self._started = False  # the first sweep, at start, also looks for communes without figures

    def mark(self, commune: str | None) -> None:
        if commune:
            with self._lock:
                self._dirty.add(commune)
            self.wake()

    def run_once(self) -> bool:
        with self._lock:
            everything = self.monotonic() >= self._next_sweep
            if everything:
                self._next_sweep = self.monotonic() + self.sweep_seconds
            communes, self._dirty = self._dirty, set()
        if everything:
            communes |= set(repository.known_communes(self.db) if self._started else
                            repository.communes_with_facts(self.db))
        started = self.monotonic()
        try:
            repository.refresh(self.db, sorted(communes), self.active_days)
        except Exception:
            with self._lock:  # try them again next round
                self._dirty |= communes
            raise
        metrics.communes_recomputed(self.service_name, len(communes))
        self._started = self._started or everything
        # what came during the round woke the loop: the next round waits `refresh_seconds`,
        # or longer after a long round
        took = self.monotonic() - started
        self.linger_seconds = max(self.refresh_seconds,
                                  took * (1 - self.busy_share) / self.busy_share)
        return False


class Figures(DependencyProvider):
    """The refresher of this process, started with the service. `store` names the service's
    ServiceStore attribute."""

    def __init__(self, store: str = "store"):
        self.store_attr = store

    def start(self):
        settings = settings_of(self.container)
        store = dependency(self.container, self.store_attr).store
        self.refresher = Refresher(store.db, settings.active_days, settings.sweep_seconds,
                                   settings.refresh_seconds)
        self.refresher.start(self.container.spawn_managed_thread,
                             self.container.service_name)

    def stop(self):
        self.refresher.stop()

    def kill(self):
        self.refresher.stop(wait=False)

    def get_dependency(self, worker_ctx):
        return self.refresher
