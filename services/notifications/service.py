"""notifications: the SMS a learner receives at each step, and their delivery.

HTTP (under /api/notifications/)
    GET  health
    GET  openapi.json
    GET  messages?learner_id=...  or  ?enrollment_id=...     phone numbers masked
    POST delivery-reports                                   the SMS gateway's callback
Consumes   enrollment.learner_contact_registered  -> the learner's phone number
           enrollment.learner_enrolled            -> SMS enrollment_confirmed
           certificates.certificate_issued        -> SMS certificate_issued
           identity.sign_in_code_requested        -> SMS sign_in_code (transactional; the
                                                     code is stored redacted, sent unsealed)
Publishes  nothing yet
State      its own database: contacts, messages, outbox, inbox
Background the SMS dispatcher (dispatcher.py) sends queued messages through SMS_PROVIDER
"""
from nameko.dependency_providers import Config
from pymongo import ASCENDING

from hocvu import health, openapi
from hocvu.clock import utcnow
from hocvu.http import NotFound, ValidationFailed, http, load_body
from hocvu.messaging import subscribe
from hocvu.outbox import drop_indexes_if_present
from hocvu.store import ServiceStore, Store
from services.notifications import messages, sign_in_codes, templates
from services.notifications.dispatcher import SmsDispatcher
from services.notifications.schemas import DeliveryReportIn, MessageOut

messages_out = MessageOut(many=True)
report_in = DeliveryReportIn()


def prepare(store: Store) -> None:
    db = store.db
    store.ensure_collections("messages", "contacts")
    db.messages.create_index("dedupe_key", unique=True)
    db.messages.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    db.messages.create_index([("learner_id", ASCENDING), ("created_at", ASCENDING)])
    db.messages.create_index("enrollment_id")
    # rewritten on every write of a message (three or four per SMS); leases need no index
    drop_indexes_if_present(db.messages, "lease_owner_1")


class NotificationsService:
    name = "notifications"

    config = Config()
    store = ServiceStore(prepare=prepare)
    dispatcher = SmsDispatcher()

    @http("GET", "/api/notifications/health", summary="broker and store reachable?",
          answers={200: "ok", 503: "broker or store unreachable"})
    def health(self, request):
        counts = {doc["_id"]: doc["n"] for doc in self.store.db.messages.aggregate(
            [{"$group": {"_id": "$status", "n": {"$sum": 1}}}])}
        return health.check(self.store, self.config["AMQP_URI"], messages=counts)

    @http("GET", "/api/notifications/openapi.json", summary="this API as an OpenAPI 3 document")
    def openapi_document(self, request):
        return openapi.build(NotificationsService, "hocvu notifications", __doc__)

    @http("GET", "/api/notifications/messages", summary="the SMS sent to a learner",
          query={"learner_id": "a learner", "enrollment_id": "an enrollment"},
          answers={200: MessageOut(many=True), 400: "neither parameter given"})
    def list_messages(self, request):
        query = {key: request.args[key] for key in ("learner_id", "enrollment_id")
                 if request.args.get(key)}
        if not query:
            raise ValidationFailed("give learner_id or enrollment_id", {
                "learner_id": ["give learner_id or enrollment_id"]})
        found = self.store.db.messages.find(query).sort("created_at", ASCENDING)
        return messages_out.dump(list(found))

    @http("POST", "/api/notifications/delivery-reports", summary="the SMS gateway's delivery report",
          body=DeliveryReportIn, answers={200: "recorded", 400: "invalid report",
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
        def work(tx):
            tx.claim_event("remember_contact", event)
            return messages.remember_contact(tx, event.data["learner_id"], event.data["phone"],
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

    @subscribe("identity", "sign_in_code_requested")
    def send_sign_in_code(self, event):
        key = sign_in_codes.opener_from_config(self.config)
        unaccented = str(self.config.get("SMS_UNACCENTED", "true")).lower() != "false"

        def work(tx):
            tx.claim_event("send_sign_in_code", event)
            return sign_in_codes.create(tx, key, event.data, event.correlation_id, utcnow(),
                                        unaccented)

        if self.store.transact(work):
            self.dispatcher.wake()

    def _create_message(self, event, consumer, template, dedupe_key, values):
        unaccented = str(self.config.get("SMS_UNACCENTED", "true")).lower() != "false"

        def work(tx):
            tx.claim_event(consumer, event)
            return messages.create(tx, template, dedupe_key, event.data["learner_id"],
                                   event.data["enrollment_id"], values, event.correlation_id,
                                   utcnow(), unaccented)

        message = self.store.transact(work)
        if message and message["status"] == messages.QUEUED:
            self.dispatcher.wake()
