"""notifications: the SMS a learner receives at each step, and their delivery.

HTTP (under /api/notifications/; who may call each route: ACCESS below)
    GET  health
    GET  openapi.json
    GET  messages[?learner_id=|enrollment_id=]   the caller's own or their communes'; paged;
                                                 phone numbers masked
    POST delivery-reports                        the SMS gateway's callback, signed
Consumes   enrollment.learner_contact_registered  -> the learner's phone number
           enrollment.learner_enrolled            -> SMS enrollment_confirmed
           certificates.certificate_issued        -> SMS certificate_issued
Publishes  nothing yet
State      its own database: contacts, messages, outbox, inbox
Background the SMS dispatcher (dispatcher.py) sends queued messages through SMS_PROVIDER
"""
import re

from nameko.dependency_providers import Config
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider
from pymongo import ASCENDING

from hocvu import auth, health, openapi, pagination
from hocvu.auth import EVERYONE_SIGNED_IN
from hocvu.clock import utcnow
from hocvu.http import NotFound, http, load_body, load_query
from hocvu.events import MalformedEvent
from hocvu.messaging import subscribe
from hocvu.sealing import CannotOpen, Opener
from hocvu.outbox import drop_indexes_if_present
from hocvu.store import ServiceStore, Store
from services.notifications import messages, templates
from services.notifications.dispatcher import SmsDispatcher
from services.notifications.schemas import DeliveryReportIn, MessagePageOut, MessagesQuery

page_out = MessagePageOut()
report_in = DeliveryReportIn()
messages_query = MessagesQuery()


class SealedValues(DependencyProvider):
    """Opens what other services sealed for notifications alone (hocvu.sealing)."""

    def setup(self):
        try:
            self.opener = Opener(str(self.container.config.get(
                "NOTIFICATIONS_SEALING_PRIVATE_KEY") or ""))
        except ValueError as exc:
            raise ConfigurationError(f"NOTIFICATIONS_SEALING_PRIVATE_KEY: {exc}") from None

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
        if not re.fullmatch(r"\+84\d{9}", phone):
            raise MalformedEvent("sealed_phone does not hold an E.164 Vietnamese number")
        return phone


def prepare(store: Store) -> None:
    db = store.db
    store.ensure_collections("messages", "contacts")
    db.messages.create_index("dedupe_key", unique=True)
    db.messages.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    db.messages.create_index([("learner_id", ASCENDING), ("created_at", ASCENDING)])
    db.messages.create_index("enrollment_id")
    db.messages.create_index([("commune_code", ASCENDING), ("created_at", ASCENDING)])
    db.messages.create_index([("learner_subject", ASCENDING), ("created_at", ASCENDING)])
    # rewritten on every write of a message (three or four per SMS); leases need no index
    drop_indexes_if_present(db.messages, "lease_owner_1")


class NotificationsService:
    name = "notifications"

    ACCESS = {
        "health": auth.OPERATIONS,
        "openapi_document": auth.PUBLIC,
        "list_messages": auth.roles(*EVERYONE_SIGNED_IN),
        "delivery_report": auth.GATEWAY,
    }

    config = Config()
    store = ServiceStore(prepare=prepare)
    dispatcher = SmsDispatcher()
    sealed = SealedValues()

    @http("GET", "/api/notifications/health", summary="broker and store reachable?",
          answers={200: health.ANSWER, 503: health.ANSWER})
    def health(self, request):
        counts = {doc["_id"]: doc["n"] for doc in self.store.db.messages.aggregate(
            [{"$group": {"_id": "$status", "n": {"$sum": 1}}}])}
        return health.check(self.store, self.config["AMQP_URI"], messages=counts)

    @http("GET", "/api/notifications/openapi.json", summary="this API as an OpenAPI 3 document")
    def openapi_document(self, request):
        return openapi.document(NotificationsService)

    @http("GET", "/api/notifications/messages",
          summary="SMS the caller may see: their own, or their communes' learners'",
          query=MessagesQuery, answers={200: MessagePageOut, 400: "invalid filter or page"})
    def list_messages(self, request):
        args = load_query(request, messages_query)
        limit, after = pagination.page_request(args)
        query = request.principal.scope_filter("province_code", "commune_code", "learner_subject")
        filters = {key: args[key] for key in ("learner_id", "enrollment_id") if key in args}
        if filters:
            query = {"$and": [query, filters]}
        page = pagination.fetch_page(self.store.db.messages, query, "created_at", limit, after)
        return page_out.dump(page)

    @http("POST", "/api/notifications/delivery-reports", summary="the SMS gateway's delivery report",
          body=DeliveryReportIn, answers={200: "recorded", 400: "invalid report",
                                          401: "unsigned or badly signed",
                                          404: "unknown request id"})
    def delivery_report(self, request):
        report = load_body(request, report_in)
        message_id = report["request_id"]
        if report["status"] == messages.DELIVERED:
            changed = self.store.db.messages.update_one(
                {"_id": message_id, "status": {"$ne": messages.DELIVERED}},
                {"$set": {"status": messages.DELIVERED,
                          "delivered_at": report["delivered_at"] or utcnow(),
                          "provider_message_id": report["message_id"]}})
        else:
            changed = self.store.db.messages.update_one(
                {"_id": message_id, "status": messages.ACCEPTED},
                {"$set": {"status": "undelivered", "last_error": report["status"]}})
        # one write in the usual case; a look only when it changed nothing
        if not changed.matched_count and not self.store.db.messages.find_one(
                {"_id": message_id}, projection={"_id": 1}):
            raise NotFound(f"no message {message_id}")
        return {"status": "recorded"}

    @subscribe("enrollment", "learner_contact_registered")
    def remember_contact(self, event):
        phone = self.sealed.phone(event.data)

        def work(tx):
            tx.claim_event("remember_contact", event)
            return messages.remember_contact(tx, event.data["learner_id"], phone,
                                             event.occurred_at, utcnow())

        if self.store.transact(work):
            self.dispatcher.wake()

    @subscribe("enrollment", "learner_enrolled")
    def confirm_enrollment(self, event):
        data = event.data
        self._create_message(event, "confirm_enrollment", templates.ENROLLMENT_CONFIRMED,
                             f"enrollment_confirmed:{data['enrollment_id']}",
                             {"full_name": data["full_name"],
                              "course_title": data["course_title"]})

    @subscribe("certificates", "certificate_issued")
    def announce_certificate(self, event):
        data = event.data
        self._create_message(event, "announce_certificate", templates.CERTIFICATE_ISSUED,
                             f"certificate_issued:{data['certificate_id']}",
                             {"full_name": data["full_name"], "course_title": data["course_title"],
                              "verification_code": data["verification_code"],
                              "verify_url": data["verify_url"]})

    def _create_message(self, event, consumer, template, dedupe_key, values):
        unaccented = str(self.config.get("SMS_UNACCENTED", "true")).lower() != "false"

        def work(tx):
            tx.claim_event(consumer, event)
            return messages.create(tx, template, dedupe_key, event.data["learner_id"],
                                   event.data["enrollment_id"], values, event.correlation_id,
                                   utcnow(), unaccented,
                                   {key: event.data.get(key) for key in messages.SCOPE_FIELDS})

        message = self.store.transact(work)
        if message and message["status"] == messages.QUEUED:
            self.dispatcher.wake()
