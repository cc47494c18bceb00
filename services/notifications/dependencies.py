"""notifications' own dependency providers: what opens the values sealed for it, and the
SMS loops that run in its container."""
from functools import partial

from nameko.extensions import DependencyProvider

from hocvu import metrics
from hocvu.events import MalformedEvent
from hocvu.nudges import nudges_of
from hocvu.sealing import CannotOpen
from hocvu.settings import settings_of
from hocvu.store import dependency
from services.notifications import policy, providers, reconcile, reminders, repository
from services.notifications.dispatcher import DispatchLoop
from services.notifications.domain import LANE_ORDER, is_vietnamese_number


class SealedValues(DependencyProvider):
    """Opens what other services sealed for notifications alone (hocvu.sealing), with the
    keys NOTIFICATIONS_SEALING_PRIVATE_KEY names."""

    def setup(self):
        self.opener = settings_of(self.container).opener

    def get_dependency(self, worker_ctx):
        return self

    def phone(self, contact: dict) -> str:
        """The number of a learner_contact_registered event; one that cannot be opened is a
        malformed event (dead-lettered at once, never retried)."""
        if contact.get("sealed_phone"):
            try:
                phone = self.opener.open(contact["sealed_phone"])
            except CannotOpen as exc:
                raise MalformedEvent(f"sealed_phone: {exc}") from None
        else:
            phone = contact["phone"]  # sent in clear by the first release
        if not is_vietnamese_number(phone):
            raise MalformedEvent("sealed_phone does not hold an E.164 Vietnamese number")
        return phone


class SmsDispatcher(DependencyProvider):
    """Runs the service's SMS loops in its container: the dispatcher (dispatcher.py) and
    the sign-in codes' own (`express`), the reminder planner (reminders.py) and the
    reconciler (reconcile.py). Workers get the dispatch loop, to wake it, with
    `reminder_days` and `wake_express` on it. `store` names the service's ServiceStore
    attribute."""

    def __init__(self, store: str = "store"):
        self.store_attr = store

    def setup(self):
        self.loop = None
        self.express = None
        self.provider = None
        self.planner = None
        self.reconciler = None

    def start(self):
        # the store's client is created in ServiceStore.setup, which ran for every extension
        store = dependency(self.container, self.store_attr).store
        settings = settings_of(self.container)
        self.provider = providers.provider_from_settings(settings)
        rules = policy.SendPolicy(store.db, settings)
        repository.retain(store, settings.retention)
        self.loop = DispatchLoop(store.db.messages, self.provider, settings, rules,
                                 lanes=LANE_ORDER[1:])
        self.express = DispatchLoop(store.db.messages, self.provider, settings, rules,
                                    lanes=LANE_ORDER[:1], job="dispatcher-sign-in-codes",
                                    name="notifications.sms_express")
        self.loop.reminder_days = reminders.ReminderDays(settings)
        self.loop.wake_express = self.express.wake
        self.planner = reminders.ReminderPlanner(store, settings, self.loop.reminder_days,
                                                 on_message=self.loop.wake)
        self.reconciler = reconcile.Reconciler(store.db.messages, self.provider, settings)
        nudges = nudges_of(self.container)
        if nudges is not None:
            for loop in (self.loop, self.express):
                nudges.on(loop.owner.job, loop.nudged)
                loop.nudge = nudges.send
        for loop in self._loops():
            loop.start(self.container.spawn_managed_thread, self.container.service_name)
        metrics.on_scrape(self.container.service_name, "sms", partial(
            reconcile.gauges, store.db.messages, settings.stuck_after,
            self.container.service_name))

    def _loops(self):
        return [loop for loop in (self.loop, self.express, self.planner, self.reconciler)
                if loop]

    def stop(self):
        metrics.forget(self.container.service_name, "sms")
        for loop in self._loops():
            loop.stop()

    def kill(self):
        for loop in self._loops():
            loop.stop(wait=False)

    def get_dependency(self, worker_ctx) -> DispatchLoop:
        return self.loop
