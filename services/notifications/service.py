"""notifications: the SMS a learner receives at each step, and their delivery.

HTTP (under /api/notifications/; who may call each route: ACCESS below)
    GET  health/live                              operations only (service port)
    GET  health/ready                             broker and store? operations only
    GET  openapi.json
    GET  messages[?learner_id=|enrollment_id=]   the caller's own or their communes'; paged;
                                                 phone numbers masked
    POST delivery-reports                        the SMS gateway's callback, signed
    GET  delivery-reports/esms?token=            eSMS's delivery report (a GET)
    POST delivery-reports/speedsms?token=        SpeedSMS's webhook: reports and replies
    POST inbound-sms                             a learner's reply (simulator format), signed
    GET  learners/<learner_id>/sms-preferences   reminders opted in or out
    PUT  learners/<learner_id>/sms-preferences   opt out of / back into reminders
    GET  metrics                                 Prometheus: requests, events, outbox, SMS
                                                 per status, stuck, backlog; operations only
Consumes   enrollment.learner_contact_registered  -> the learner's phone number
           enrollment.learner_enrolled            -> SMS enrollment_confirmed; reminders start
           certificates.certificate_issued        -> SMS certificate_issued
           certificates.certificate_revoked       -> SMS certificate_revoked (when and why)
           enrollment.enrollment_cancelled        -> reminders stop (none ever again)
           lessons.lessons_assigned               -> the lessons a reminder names
           lessons.lesson_completed               -> progress: the next reminder moves on
           lessons.course_completed               -> reminders stop
           identity.sign_in_code_requested        -> SMS sign_in_code (transactional; the
                                                     code is stored redacted, sent unsealed)
           (contacts, learner_enrolled, lessons_assigned and the certificate events come
           in batches, each written with one bulk write: hocvu.messaging.subscribe_batch)
Publishes  sms_outcome: an SMS about a learner delivered, or failed for good (for reports;
           never the number or the text)
State      its own database: contacts, messages, reminders, sms_optouts, sms_daily_counts

Background the SMS dispatcher (dispatcher.py) sends queued messages through SMS_PROVIDER
           under the send policy (policy.py); the reminder planner (reminders.py); the
           reconciler (reconcile.py) settles messages that wait too long
"""
import hmac
import re
import textwrap

from nameko.dependency_providers import Config
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider
from pymongo import ASCENDING

from hocvu import auth, pagination
from hocvu.auth import EVERYONE_SIGNED_IN
from hocvu.clock import utcnow
from hocvu.http import NotFound, ValidationFailed, http, load_body, load_query, read_json
from hocvu.events import MalformedEvent
from hocvu.messaging import subscribe, subscribe_batch
from hocvu.sealing import CannotOpen, Opener
from hocvu.store import drop_indexes_if_present
from hocvu.store import ServiceStore, Store
from hocvu.operations import OPERATIONS_ACCESS, operations_routes
from services.notifications import (messages, optout, providers, reminders,
                                    sign_in_codes, templates)
from services.notifications.dispatcher import SmsDispatcher
from services.notifications.templates import vietnamese_day
from services.notifications.schemas import (
    DeliveryReportIn, InboundSmsIn, MessagePageOut, SmsPreferencesIn, SmsPreferencesOut,
    MessagesQuery)

page_out = MessagePageOut()
report_in = DeliveryReportIn()
preferences_in = SmsPreferencesIn()
preferences_out = SmsPreferencesOut()
inbound_in = InboundSmsIn()
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
    store.ensure_collections("messages", "contacts", "reminders", "sms_optouts",
                             "sms_daily_counts")
    db.messages.create_index("dedupe_key", unique=True)
    db.messages.create_index("provider_message_id")  # reports that name only the provider's id
    db.messages.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    db.messages.create_index([("status", ASCENDING), ("accepted_at", ASCENDING)])
    db.messages.create_index([("commune_code", ASCENDING), ("created_at", ASCENDING)])
    db.messages.create_index([("learner_subject", ASCENDING), ("created_at", ASCENDING)])
    # a learner's scope, for their SMS preferences (_phone_of), and their waiting messages
    db.messages.create_index([("learner_id", ASCENDING), ("created_at", ASCENDING)])
    reminders.prepare(db)
    # every write of a message rewrites all its index entries, and a message is written three
    # or four times: a page filtered by enrollment reads within the caller's scope (commune
    # or subject) instead, and messages awaiting a contact are found by next_attempt_at,
    # their creation time (docs/performance.md)
    drop_indexes_if_present(db.messages, "lease_owner_1", "status_1_created_at_1",
                            "enrollment_id_1")


class NotificationsService(operations_routes("notifications")):
    name = "notifications"

    ACCESS = {
        **OPERATIONS_ACCESS,
        "list_messages": auth.roles(*EVERYONE_SIGNED_IN),
        "delivery_report": auth.GATEWAY,
        # eSMS and SpeedSMS cannot sign with our HMAC: their callback URLs carry a secret
        # token instead (SMS_ESMS_CALLBACK_TOKEN, SMS_SPEEDSMS_WEBHOOK_TOKEN), checked below
        "esms_delivery_report": auth.PUBLIC,  # + token
        "speedsms_webhook": auth.PUBLIC,
        "inbound_sms": auth.GATEWAY,
        # the learner, or staff whose communes cover the learner (checked in the handler)
        "get_sms_preferences": auth.roles(*EVERYONE_SIGNED_IN),
        "set_sms_preferences": auth.roles(*EVERYONE_SIGNED_IN),
    }

    config = Config()
    store = ServiceStore(prepare=prepare)
    dispatcher = SmsDispatcher(store="store")
    sealed = SealedValues()

    @http("GET", "/api/notifications/messages",
          summary="SMS the caller may see: their own, or their communes' learners'",
          query=MessagesQuery, answers={200: MessagePageOut, 400: "invalid filter or page"})
    def list_messages(self, request):
        args = load_query(request, messages_query)
        page = pagination.scoped_page(self.store.db.messages, request.principal, args,
                                      ("learner_id", "enrollment_id"), "created_at")
        return page_out.dump(page)

    @http("POST", "/api/notifications/delivery-reports", summary="the SMS gateway's delivery report",
          body=DeliveryReportIn, answers={200: "recorded", 400: "invalid report",
                                          401: "unsigned or badly signed",
                                          404: "unknown request id"})
    def delivery_report(self, request):
        report = load_body(request, report_in)
        message_id = report["request_id"]
        # read first: the update announces the outcome, which names the message's template
        # and commune (sms_outcome)
        message = self.store.db.messages.find_one(
            {"_id": message_id}, projection=dict.fromkeys(messages.OUTCOME_FIELDS, 1))
        if message is None:
            raise NotFound(f"no message {message_id}")
        now = utcnow()
        if report["status"] == messages.DELIVERED:
            self.store.db.messages.update_one(
                {"_id": message_id, "status": {"$ne": messages.DELIVERED}},
                messages.with_outcome({"$set": {
                    "status": messages.DELIVERED, "delivered_at": report["delivered_at"] or now,
                    "provider_message_id": report["message_id"]}}, message, messages.DELIVERED,
                    now))
        else:
            # queued too: the report may overtake the dispatcher's record of the send
            self.store.db.messages.update_one(
                {"_id": message_id, "status": {"$in": [messages.ACCEPTED, messages.QUEUED]}},
                messages.with_outcome({"$set": {"status": "undelivered",
                                                "last_error": report["status"]}},
                                      message, messages.FAILED, now))
        return {"status": "recorded"}

    @http("GET", "/api/notifications/delivery-reports/esms",
          summary="eSMS's delivery report, sent as a GET with the report in the query string",
          answers={200: "recorded", 400: "not an eSMS report", 404: "unknown message"})
    def esms_delivery_report(self, request):
        self._check_callback_token(request, "SMS_ESMS_CALLBACK_TOKEN")
        report = request.args.to_dict()
        report.pop("token", None)
        return self._provider_report("esms", report)

    @http("POST", "/api/notifications/delivery-reports/speedsms",
          summary="SpeedSMS's webhook: a delivery report or a learner's reply",
          answers={200: "recorded", 400: "not a SpeedSMS report or reply",
                   404: "unknown message"})
    def speedsms_webhook(self, request):
        self._check_callback_token(request, "SMS_SPEEDSMS_WEBHOOK_TOKEN")
        body = read_json(request)
        if isinstance(body, dict) and body.get("type") == "incoming":
            try:
                phone, text = providers.SpeedSmsProvider.parse_incoming(body)
            except providers.BadReport as exc:
                raise ValidationFailed(str(exc), {"_body": [str(exc)]}) from None
            return self._reply(phone, text)
        return self._provider_report("speedsms", body)

    @http("POST", "/api/notifications/inbound-sms",
          summary="a learner's SMS reply from the gateway: STOP/TUCHOI opts out of reminders",
          body=InboundSmsIn, answers={200: "the action taken, if any", 400: "invalid reply"})
    def inbound_sms(self, request):
        reply = load_body(request, inbound_in)
        return self._reply(reply["sender"], reply["text"])

    @http("GET", "/api/notifications/learners/<learner_id>/sms-preferences",
          summary="whether a learner receives reminder-like SMS",
          answers={200: SmsPreferencesOut(), 404: "no phone number known for this learner"})
    def get_sms_preferences(self, request, learner_id):
        phone = self._phone_of(request, learner_id)
        found = self.store.db.sms_optouts.find_one({"_id": phone}) or {}
        return preferences_out.dump({"learner_id": learner_id,
                                     "reminders": not found.get("opted_out", False),
                                     "changed_at": found.get("changed_at")})

    @http("PUT", "/api/notifications/learners/<learner_id>/sms-preferences",
          summary="opt a learner out of (or back into) reminder-like SMS",
          body=SmsPreferencesIn, answers={200: SmsPreferencesOut(), 400: "invalid body",
                                          404: "no phone number known for this learner"})
    def set_sms_preferences(self, request, learner_id):
        wanted = load_body(request, preferences_in)
        phone = self._phone_of(request, learner_id)
        now = utcnow()
        optout.set_opt_out(self.store.db.sms_optouts, phone, not wanted["reminders"], "api", now)
        return preferences_out.dump({"learner_id": learner_id, "reminders": wanted["reminders"],
                                     "changed_at": now})

    def _provider_report(self, provider_name, payload):
        adapter = providers.PROVIDERS[provider_name]
        try:
            report = adapter.parse_report(payload)
        except providers.BadReport as exc:
            raise ValidationFailed(str(exc), {"_body": [str(exc)]}) from None
        if not messages.record_report(self.store.db.messages, report, utcnow()):
            raise NotFound("no message for this report")
        return {"status": "recorded"}

    def _reply(self, phone, text):
        phone = providers.base.from_provider_number(phone)
        action = optout.action_for(text, optout.keywords(self.config))
        if action:
            optout.set_opt_out(self.store.db.sms_optouts, phone, action == optout.OPT_OUT,
                               "sms", utcnow())
        return {"action": action}

    def _phone_of(self, request, learner_id):
        """The learner's number, if the caller may act for that learner: the learner, or
        staff whose communes cover them (known from the learner's messages). Anyone else is
        told what they would be told of a learner who does not exist."""
        missing = NotFound(f"no phone number known for learner {learner_id}")
        scope = self.store.db.messages.find_one(
            {"learner_id": learner_id}, projection=dict.fromkeys(messages.SCOPE_FIELDS, 1))
        if scope is None or not request.principal.may_see(
                scope.get("province_code"), scope.get("commune_code"),
                scope.get("learner_subject")):
            raise missing
        contact = self.store.db.contacts.find_one({"_id": learner_id}, projection={"phone": 1})
        if not contact or not contact.get("phone"):
            raise missing
        return contact["phone"]

    def _check_callback_token(self, request, setting):
        """The secret token in a provider's callback URL (eSMS and SpeedSMS cannot sign with
        our HMAC). Without it the route answers as if it did not exist."""
        expected = str(self.config.get(setting) or "")
        given = request.args.get("token", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise NotFound("no such callback")

    @subscribe_batch("enrollment", "learner_contact_registered")
    def remember_contact(self, events):
        # a number that cannot be opened fails the batch; alone, its event is dead-lettered
        contacts = [(event.data["learner_id"], self.sealed.phone(event.data), event.occurred_at)
                    for event in events]
        if messages.remember_contacts(self.store.db, contacts, utcnow()):
            self.dispatcher.wake()

    @subscribe_batch("enrollment", "learner_enrolled")
    def confirm_enrollment(self, events):
        reminders.on_enrolled_many(self.store.db, [event.data for event in events],
                                   self.dispatcher.reminder_days, utcnow())
        return self._create_messages(events, [messages.Wanted(
            templates.ENROLLMENT_CONFIRMED, f"enrollment_confirmed:{data['enrollment_id']}",
            data["learner_id"], data["enrollment_id"],
            {"full_name": data["full_name"], "course_title": data["course_title"]},
            event.correlation_id, _scope(data)) for event, data in _with_data(events)])

    @subscribe_batch("lessons", "lessons_assigned")
    def remember_lessons(self, events):
        reminders.on_lessons_assigned_many(self.store.db, [event.data for event in events],
                                           utcnow())

    @subscribe("lessons", "lesson_completed")
    def note_progress(self, event):
        reminders.on_lesson_completed(self.store.db, event.data, self.dispatcher.reminder_days,
                                      utcnow())

    @subscribe("lessons", "course_completed")
    def stop_reminders(self, event):
        reminders.stop(self.store.db, event.data["enrollment_id"], reminders.COMPLETED, utcnow(),
                       event.data)

    @subscribe("enrollment", "enrollment_cancelled")
    def stop_reminders_for_cancellation(self, event):
        # idempotent by itself: stopping a stopped enrollment changes nothing; arriving before
        # learner_enrolled, it leaves a stopped state that enrollment will not restart
        reminders.stop(self.store.db, event.data["enrollment_id"], reminders.CANCELLED, utcnow(),
                       event.data)

    @subscribe_batch("certificates", "certificate_revoked")
    def announce_revocation(self, events):
        return self._create_messages(events, [messages.Wanted(
            templates.CERTIFICATE_REVOKED, f"certificate_revoked:{data['certificate_id']}",
            data["learner_id"], data["enrollment_id"],
            {"full_name": data["full_name"], "course_title": data["course_title"],
             # a long reason would cost several SMS; the whole of it is on the
             # verification page
             "serial": data["serial"],
             "reason": textwrap.shorten(data["reason"], 120, placeholder="..."),
             "revoked_on": vietnamese_day(data["revoked_at"])},
            event.correlation_id, _scope(data)) for event, data in _with_data(events)])

    @subscribe_batch("certificates", "certificate_issued")
    def announce_certificate(self, events):
        return self._create_messages(events, [messages.Wanted(
            templates.CERTIFICATE_ISSUED, f"certificate_issued:{data['certificate_id']}",
            data["learner_id"], data["enrollment_id"],
            {"full_name": data["full_name"], "course_title": data["course_title"],
             "verification_code": data["verification_code"], "verify_url": data["verify_url"]},
            event.correlation_id, _scope(data)) for event, data in _with_data(events)])

    @subscribe("identity", "sign_in_code_requested")
    def send_sign_in_code(self, event):
        unaccented = str(self.config.get("SMS_UNACCENTED", "true")).lower() != "false"
        if sign_in_codes.create(self.store.db, self.sealed.opener, event.data,
                                event.correlation_id, utcnow(), unaccented):
            self.dispatcher.wake()

    def _create_messages(self, events, wanted: list[messages.Wanted]) -> list:
        """The messages `wanted` names, each once however often its event comes; answers
        the events whose message existed already (redeliveries)."""
        unaccented = str(self.config.get("SMS_UNACCENTED", "true")).lower() != "false"
        created = messages.create_many(self.store.db, wanted, utcnow(), unaccented)
        if any(message and message["status"] == messages.QUEUED for message in created):
            self.dispatcher.wake()
        return [event for event, message in zip(events, created) if message is None]


def _with_data(events):
    return [(event, event.data) for event in events]


def _scope(data: dict) -> dict:
    return {key: data.get(key) for key in messages.SCOPE_FIELDS}
