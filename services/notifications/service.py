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
           notifications.sms_report_received      -> the messages the reports name settled
           (all but cancellations and sign-in codes come in batches, each written with
           one bulk write: hocvu.messaging.subscribe_batch)
Publishes  sms_outcome: an SMS about a learner delivered, or failed for good (for reports;
           never the number or the text)
           sms_report_received, to itself: each delivery report route answers once the
           broker has the report (hocvu.direct), whatever the store's backlog
State      its own database: contacts, messages (written once) with sms_waiting, sms_queue
           and sms_outcomes (appended: a message's status is derived from them,
           repository.py; the daily caps count its accepted outcomes), reminders,
           sms_optouts, sms_rechecks

Background the SMS dispatcher (dispatcher.py) sends queued messages through SMS_PROVIDER
           under the send policy (policy.py), in one instance at a time; another instance
           that queued messages nudges it (hocvu.nudges, exchange notifications.nudges);
           the reminder planner (reminders.py); the reconciler (reconcile.py) settles
           messages that wait too long
"""

import hmac
import logging

from nameko.dependency_providers import Config

from hocvu import auth, logcontext
from hocvu.auth import EVERYONE_SIGNED_IN
from hocvu.clock import utcnow
from hocvu.direct import DirectPublisher, NotPublished
from hocvu.http import (NotFound, ServiceUnavailable, ValidationFailed, http, load_body,
                        load_query, read_json)
from hocvu.messaging import subscribe, subscribe_batch
from hocvu.nudges import NudgeChannel
from hocvu.operations import OPERATIONS_ACCESS, operations_routes
from hocvu.settings import Settings
from hocvu.store import ServiceStore
from services.notifications import (domain, optout, providers, reminders, repository,
                                    sign_in_codes)
from services.notifications.dependencies import SealedValues, SmsDispatcher
from services.notifications.schemas import (
    DeliveryReportIn, InboundSmsIn, MessagePageOut, SmsPreferencesIn, SmsPreferencesOut,
    MessagesQuery)
from services.notifications.settings import NotificationsSettings

# a delivery report is queued, then applied within a second or so (apply_reports); one that
# names no message of ours is logged and forgotten
REPORT_ACCEPTED = "accepted: queued, applied within seconds"
REPORT_NOT_QUEUED = "the broker could not take the report: send it again"
NO_TOKEN = "without the callback URL's secret token (the route is not shown to anyone else)"

log = logging.getLogger(__name__)
page_out = MessagePageOut()
report_in = DeliveryReportIn()
preferences_in = SmsPreferencesIn()
preferences_out = SmsPreferencesOut()
inbound_in = InboundSmsIn()
messages_query = MessagesQuery()


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

    config = Config()  # the operations routes read AMQP_URI
    settings = Settings(NotificationsSettings)
    store = ServiceStore(prepare=repository.prepare)
    dispatcher = SmsDispatcher(store="store")
    # wakes the dispatcher in the instance that holds its lease (hocvu.nudges)
    nudges = NudgeChannel()
    sealed = SealedValues()
    publish = DirectPublisher()

    @http("GET", "/api/notifications/messages",
          summary="SMS the caller may see: their own, or their communes' learners'",
          query=MessagesQuery, answers={200: MessagePageOut, 400: "invalid filter or page"})
    def list_messages(self, request):
        args = load_query(request, messages_query)
        return page_out.dump(repository.messages_page(self.store.db, request.principal, args))

    @http("POST", "/api/notifications/delivery-reports", summary="the SMS gateway's delivery report",
          body=DeliveryReportIn, answers={200: REPORT_ACCEPTED, 400: "invalid report",
                                          401: "unsigned or badly signed",
                                          503: REPORT_NOT_QUEUED})
    def delivery_report(self, request):
        report = load_body(request, report_in)
        delivered = report["status"] == domain.DELIVERED
        return self._queue_report("gateway", {
            "status": domain.DELIVERED if delivered else domain.UNDELIVERED,
            "request_id": report["request_id"], "provider_message_id": report["message_id"],
            "delivered_at": report["delivered_at"],
            "detail": None if delivered else report["status"]})

    @http("GET", "/api/notifications/delivery-reports/esms",
          summary="eSMS's delivery report, sent as a GET with the report in the query string",
          answers={200: REPORT_ACCEPTED, 400: "not an eSMS report", 404: NO_TOKEN,
                   503: REPORT_NOT_QUEUED})
    def esms_delivery_report(self, request):
        self._check_callback_token(request, self.settings.esms_callback_token)
        report = request.args.to_dict()
        report.pop("token", None)
        return self._provider_report("esms", report)

    @http("POST", "/api/notifications/delivery-reports/speedsms",
          summary="SpeedSMS's webhook: a delivery report or a learner's reply",
          answers={200: REPORT_ACCEPTED + "; a reply: the action taken, if any",
                   400: "not a SpeedSMS report or reply", 404: NO_TOKEN,
                   503: REPORT_NOT_QUEUED})
    def speedsms_webhook(self, request):
        self._check_callback_token(request, self.settings.speedsms_webhook_token)
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
        found = optout.preference(self.store.db.sms_optouts, phone)
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
        if report.status == providers.PENDING:
            return {"status": "accepted"}  # nothing to settle yet
        return self._queue_report(provider_name, {
            "status": domain.DELIVERED if report.status == providers.DELIVERED else
            domain.UNDELIVERED, "request_id": report.request_id,
            "provider_message_id": report.provider_message_id,
            "delivered_at": report.delivered_at, "detail": report.detail})

    def _queue_report(self, source: str, report: dict) -> dict:
        """Hand the report to the broker, for apply_reports; the store is not asked here.
        An id longer than ours or a provider's can be names no message: as if unnamed."""
        report = {**report, "detail": (report["detail"] or "")[:200] or None,
                  "request_id": _fitting(report["request_id"], 64),
                  "provider_message_id": _fitting(report["provider_message_id"], 100)}
        if not report["request_id"] and not report["provider_message_id"]:
            log.warning("a %s delivery report names no message we could know", source)
            return {"status": "accepted"}
        try:
            self.publish("sms_report_received",
                         {**report, "source": source, "received_at": utcnow()},
                         logcontext.current().get("correlation_id") or
                         report["request_id"] or report["provider_message_id"])
        except NotPublished:
            raise ServiceUnavailable("the report could not be queued; send it again") from None
        return {"status": "accepted"}

    def _reply(self, phone, text):
        phone = providers.base.from_provider_number(phone)
        action = optout.action_for(text, optout.keywords(self.settings.optout_keywords,
                                                         self.settings.optin_keywords))
        if action:
            optout.set_opt_out(self.store.db.sms_optouts, phone, action == optout.OPT_OUT,
                               "sms", utcnow())
        return {"action": action}

    def _phone_of(self, request, learner_id):
        """The learner's number, if the caller may act for that learner: the learner, or
        staff whose communes cover them (known from the learner's messages). Anyone else is
        told what they would be told of a learner who does not exist."""
        missing = NotFound(f"no phone number known for learner {learner_id}")
        scope = repository.learner_scope(self.store.db, learner_id)
        if scope is None or not request.principal.may_see(
                scope.get("province_code"), scope.get("commune_code"),
                scope.get("learner_subject")):
            raise missing
        phone = repository.phones_of(self.store.db, [learner_id]).get(learner_id)
        if not phone:
            raise missing
        return phone

    def _check_callback_token(self, request, expected: str):
        """The secret token in a provider's callback URL (eSMS and SpeedSMS cannot sign with
        our HMAC). Without it the route answers as if it did not exist."""
        given = request.args.get("token", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise NotFound("no such callback")

    @subscribe_batch("enrollment", "learner_contact_registered")
    def remember_contact(self, events):
        # a number that cannot be opened fails the batch; alone, its event is dead-lettered
        contacts = [(event.data["learner_id"], self.sealed.phone(event.data), event.occurred_at)
                    for event in events]
        if repository.remember_contacts(self.store.db, contacts, utcnow()):
            self.dispatcher.wake()

    @subscribe_batch("enrollment", "learner_enrolled")
    def confirm_enrollment(self, events):
        reminders.on_enrolled_many(self.store.db, [event.data for event in events],
                                   self.dispatcher.reminder_days, utcnow())
        return self._create_messages(events, [
            domain.enrollment_confirmation(event.data, event.correlation_id) for event in events])

    @subscribe_batch("lessons", "lessons_assigned")
    def remember_lessons(self, events):
        reminders.on_lessons_assigned_many(self.store.db, [event.data for event in events],
                                           utcnow())

    @subscribe_batch("lessons", "lesson_completed")
    def note_progress(self, events):
        reminders.on_lessons_completed(self.store.db, [event.data for event in events],
                                       utcnow())

    @subscribe_batch("lessons", "course_completed")
    def stop_reminders(self, events):
        reminders.stop_many(self.store.db, [event.data for event in events],
                            reminders.COMPLETED, utcnow())

    @subscribe("enrollment", "enrollment_cancelled")
    def stop_reminders_for_cancellation(self, event):
        # idempotent by itself: stopping a stopped enrollment changes nothing; arriving before
        # learner_enrolled, it leaves a stopped state that enrollment will not restart
        reminders.stop(self.store.db, event.data["enrollment_id"], reminders.CANCELLED, utcnow(),
                       event.data)

    @subscribe_batch("certificates", "certificate_revoked")
    def announce_revocation(self, events):
        return self._create_messages(events, [
            domain.revocation_notice(event.data, event.correlation_id) for event in events])

    @subscribe_batch("certificates", "certificate_issued")
    def announce_certificate(self, events):
        repository.bring_confirmations_forward(self.store.db, [event.data for event in events],
                                           utcnow())
        return self._create_messages(events, [
            domain.certificate_notice(event.data, event.correlation_id) for event in events])

    @subscribe_batch("notifications", "sms_report_received")
    def apply_reports(self, events):
        unknown = repository.apply_reports(self.store.db.messages,
                                           [event.data for event in events], utcnow())
        for event in (events[position] for position in unknown):
            with logcontext.bound(correlation_id=event.correlation_id, event_id=event.event_id):
                log.warning("a %s delivery report names no message of ours (request %s, "
                            "provider's id %s)", event.data["source"],
                            event.data.get("request_id"), event.data.get("provider_message_id"))

    @subscribe("identity", "sign_in_code_requested")
    def send_sign_in_code(self, event):
        if sign_in_codes.create(self.store.db, self.sealed.opener, event.data,
                                event.correlation_id, utcnow(), self.settings.unaccented):
            self.dispatcher.wake_express()

    def _create_messages(self, events, wanted: list[domain.Wanted]) -> list:
        """The messages `wanted` names, each once however often its event comes; answers
        the events whose message existed already (redeliveries)."""
        created = repository.create_many(self.store.db, wanted, utcnow(),
                                         self.settings.unaccented)
        if any(message and message["to"] for message in created):
            self.dispatcher.wake()
        return [event for event, message in zip(events, created) if message is None]


def _fitting(identifier, longest: int) -> str | None:
    return str(identifier) if identifier and len(str(identifier)) <= longest else None
