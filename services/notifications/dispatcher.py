"""The SMS dispatcher: sends queued messages through the provider, several at a time.

It claims queued messages under a lease (several notifications instances share the work;
a crashed instance's claim runs out), sends them concurrently, and records the outcome:
accepted, retry later with exponential backoff (the provider is down, slow or rate
limiting), or failed for good.
"""
import logging
from datetime import timedelta

from eventlet import GreenPool
from nameko.extensions import DependencyProvider
from pymongo import ASCENDING

from hocvu.background import WakeableLoop
from hocvu.clock import utcnow
from hocvu.leases import NEVER, claim_batch, release
from hocvu.privacy import mask_phone
from hocvu.store import ServiceStore
from services.notifications import providers, sign_in_codes
from services.notifications.messages import ACCEPTED, FAILED, QUEUED

log = logging.getLogger(__name__)

_ORDER = [("next_attempt_at", ASCENDING), ("created_at", ASCENDING)]


class DispatchLoop(WakeableLoop):
    name = "notifications.sms_dispatcher"

    def __init__(self, messages, provider, config: dict):
        super().__init__()
        self.messages = messages
        self.provider = provider
        self.brandname = config.get("SMS_BRANDNAME", "HOCVUSO")
        self.concurrency = int(config.get("SMS_SEND_CONCURRENCY", 10))
        self.batch_size = int(config.get("SMS_BATCH_SIZE", 100))
        self.max_attempts = int(config.get("SMS_MAX_ATTEMPTS", 8))
        self.max_backoff = float(config.get("SMS_MAX_BACKOFF_SECONDS", 300))
        self.poll_seconds = float(config.get("SMS_POLL_SECONDS", 1.0))
        self.linger_seconds = float(config.get("SMS_LINGER_SECONDS", 0.02))
        self.lease = timedelta(seconds=float(config.get("SMS_LEASE_SECONDS", 30)))
        self.pool = GreenPool(self.concurrency)
        self.opener = sign_in_codes.opener_from_config(config)

    def run_once(self) -> bool:
        due = {"status": QUEUED, "next_attempt_at": {"$lte": utcnow()}}
        batch = claim_batch(self.messages, due, _ORDER, self.batch_size, self.lease)
        for message, result in zip(batch, self.pool.imap(self._send, batch)):
            self._record(message, result)
        return len(batch) == self.batch_size

    def _send(self, message: dict) -> providers.SendResult:
        return self.provider.send(providers.SmsRequest(
            request_id=message["_id"], to=message["to"],
            text=sign_in_codes.text_to_send(message, self.opener),
            encoding=message["encoding"], brandname=self.brandname))

    def _record(self, message: dict, result: providers.SendResult) -> None:
        now = utcnow()
        attempts = message["attempts"] + 1
        if result.outcome == providers.ACCEPTED:
            # recorded and released in one write: each write of a message costs the store
            accepted = {"provider": self.provider.name, "attempts": attempts,
                        "provider_message_id": result.provider_message_id, "accepted_at": now,
                        "lease_until": NEVER}
            changed = self.messages.update_one(
                {"_id": message["_id"], "status": QUEUED},
                {"$set": {**accepted, "status": ACCEPTED}, "$unset": {"lease_owner": ""}})
            if not changed.matched_count:
                # the delivery report was quicker than us and already marked it delivered
                self.messages.update_one({"_id": message["_id"]},
                                         {"$set": accepted, "$unset": {"lease_owner": ""}})
        elif result.outcome == providers.RETRY and attempts < self.max_attempts:
            delay = result.retry_after or min(2 ** attempts, self.max_backoff)
            log.warning("SMS %s to %s not accepted (%s); attempt %s, retrying in %ss",
                        message["_id"], mask_phone(message["to"]), result.error, attempts, delay)
            release(self.messages, [message["_id"]], {"$set": {
                "attempts": attempts, "last_error": result.error,
                "next_attempt_at": now + timedelta(seconds=delay)}})
        else:
            log.error("SMS %s to %s failed for good after %s attempts: %s",
                      message["_id"], mask_phone(message["to"]), attempts, result.error)
            release(self.messages, [message["_id"]], {"$set": {
                "status": FAILED, "attempts": attempts, "last_error": result.error,
                "failed_at": now}})


class SmsDispatcher(DependencyProvider):
    """Runs the dispatch loop in the service's container; workers get it to wake it."""

    def setup(self):
        self.loop = None

    def start(self):
        # the store's client is created in ServiceStore.setup, which ran for every extension
        store = next(dep.store for dep in self.container.dependencies
                     if isinstance(dep, ServiceStore))
        provider = providers.provider_from_config(self.container.config)
        self.loop = DispatchLoop(store.db.messages, provider, self.container.config)
        self.loop.start(self.container.spawn_managed_thread)

    def stop(self):
        if self.loop:
            self.loop.stop()

    def kill(self):
        if self.loop:
            self.loop.stop(wait=False)

    def get_dependency(self, worker_ctx) -> DispatchLoop:
        return self.loop
