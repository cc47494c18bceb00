"""Notifications' rules, without I/O: the life of a message and what each event asks for.

A message is created once per thing worth telling (its `dedupe_key`), so a redelivered
event never makes a second SMS. It waits in `awaiting_contact` until the learner's phone
number is known (learner_contact_registered may arrive after the event that asks for the
message), is `queued` for the dispatcher, `accepted` by the provider, and `delivered` when
the provider's delivery report comes back; `failed` if the provider refused it for good,
`undelivered` if the report says it never reached the handset, `suppressed` if it is a
reminder to a number that opted out, and `unknown` if the provider accepted it but neither a
report nor a status query told us more in time (reconcile.py).

What a learner (or staff) is shown is one of LEARNER_STATUSES, with a reason where there
is one (docs/sms-gateway.md, "Message status").

The send policy (policy.py), the reply keywords (optout.py), the texts (templates.py) and
their encoding (sms.py) are rules of their own, each in its module.
"""
import re
import textwrap
from dataclasses import dataclass

from services.notifications import templates

AWAITING_CONTACT, QUEUED, ACCEPTED, DELIVERED, FAILED = (
    "awaiting_contact", "queued", "accepted", "delivered", "failed")
UNDELIVERED, SUPPRESSED, UNKNOWN = "undelivered", "suppressed", "unknown"
FINAL = (DELIVERED, FAILED, UNDELIVERED, SUPPRESSED, UNKNOWN)
# the ends announced (sms_outcome, counted by reporting): a reminder the learner chose not to
# receive is no failure to count
ANNOUNCED = (DELIVERED, FAILED, UNDELIVERED, UNKNOWN)

# the learner-facing status of each stored one: the documented, closed set
LEARNER_STATUSES = {
    AWAITING_CONTACT: "pending", QUEUED: "pending", ACCEPTED: "sent",
    DELIVERED: "delivered", UNDELIVERED: "not_delivered", FAILED: "not_sent",
    SUPPRESSED: "not_sent", UNKNOWN: "unknown",
}

# A report of delivery wins over anything but itself: it may overtake the send's own answer,
# or come after reconciliation said `unknown`. A report of failure only changes a message
# still waiting for one, queued included: it may overtake the dispatcher's record of the send.
# The gateway's own signed report leaves a message reconciliation settled as it is.
FAILURE_REPORT_SETTLES = (ACCEPTED, UNKNOWN, QUEUED)
GATEWAY_FAILURE_REPORT_SETTLES = (ACCEPTED, QUEUED)
# every status but delivered (a list, not $ne: the filter stays an equality set next to _id)
NOT_DELIVERED = (AWAITING_CONTACT, QUEUED, ACCEPTED, FAILED, UNDELIVERED, SUPPRESSED, UNKNOWN)


@dataclass(frozen=True)
class Settlement:
    """A change of a message's status: to `status` with `fields`, only from a status in
    `replaces` (whatever came first may have settled it already)."""
    status: str
    fields: dict
    replaces: tuple[str, ...]


def report_settlement(report: dict, now) -> Settlement:
    """What a delivery report (contracts.SmsReportReceived's data) changes. The gateway's
    own failure leaves a message reconciliation settled as it is; a provider's does not."""
    if report["status"] == DELIVERED:
        fields = {"delivered_at": report.get("delivered_at") or now}
        if report.get("provider_message_id"):
            fields["provider_message_id"] = report["provider_message_id"]
        return Settlement(DELIVERED, fields, NOT_DELIVERED)
    if report["source"] == "gateway":
        return Settlement(UNDELIVERED, {"last_error": report.get("detail") or UNDELIVERED},
                          GATEWAY_FAILURE_REPORT_SETTLES)
    return Settlement(UNDELIVERED, {"last_error": f"report: {report.get('detail')}"[:200],
                                    "reported_at": now}, FAILURE_REPORT_SETTLES)

# who may read a message (hocvu.auth): copied from the event that asks for it
SCOPE_FIELDS = ("province_code", "commune_code", "learner_subject")

# The dispatcher's lanes, served in this order: a lane's backlog never holds back a lane
# above it. A sign-in code is awaited on a phone screen; a certificate (or its revocation)
# ends a course; a confirmation can wait behind a launch morning's list; reminders last.
LANES = {templates.SIGN_IN_CODE: 0, templates.CERTIFICATE_ISSUED: 1,
         templates.CERTIFICATE_REVOKED: 1, templates.ENROLLMENT_CONFIRMED: 2,
         templates.LESSON_REMINDER: 3, templates.PROGRESS_REMINDER: 3}
LANE_ORDER = tuple(sorted(set(LANES.values())))


def lane_of(template: str) -> int:
    return LANES.get(template, LANE_ORDER[-1])


# a revocation's reason beyond this would cost several SMS; the whole of it is on the
# verification page
REASON_LENGTH = 120


def learner_status(message: dict) -> str:
    return LEARNER_STATUSES.get(message.get("status"), "unknown")


def reason(message: dict) -> str | None:
    """Why a message is not (yet) delivered, in words an operator or a learner can act on."""
    status = message.get("status")
    if status == AWAITING_CONTACT:
        return "waiting for the learner's phone number"
    if status == QUEUED:
        return message.get("held_reason") or message.get("last_error")
    if status in (FAILED, UNDELIVERED, SUPPRESSED, UNKNOWN):
        return message.get("last_error")
    return None


def is_vietnamese_number(phone: str) -> bool:
    """Is `phone` a Vietnamese number in E.164 (+84 and nine digits)?"""
    return re.fullmatch(r"\+84\d{9}", phone) is not None


def scope_of(data: dict) -> dict:
    return {key: data.get(key) for key in SCOPE_FIELDS}


@dataclass(frozen=True)
class Wanted:
    """A message some event asks for (its `dedupe_key` says what it tells)."""
    template: str
    dedupe_key: str
    learner_id: str
    enrollment_id: str
    values: dict
    correlation_id: str
    scope: dict | None = None


def enrollment_confirmation(data: dict, correlation_id: str) -> Wanted:
    """The SMS learner_enrolled asks for."""
    return _to_learner(templates.ENROLLMENT_CONFIRMED,
                       f"enrollment_confirmed:{data['enrollment_id']}", data, {}, correlation_id)


def certificate_notice(data: dict, correlation_id: str) -> Wanted:
    """The SMS certificate_issued asks for."""
    return _to_learner(templates.CERTIFICATE_ISSUED,
                       f"certificate_issued:{data['certificate_id']}", data,
                       {"verification_code": data["verification_code"],
                        "verify_url": data["verify_url"]}, correlation_id)


def revocation_notice(data: dict, correlation_id: str) -> Wanted:
    """The SMS certificate_revoked asks for: when, and why."""
    return _to_learner(templates.CERTIFICATE_REVOKED,
                       f"certificate_revoked:{data['certificate_id']}", data,
                       {"serial": data["serial"],
                        "reason": textwrap.shorten(data["reason"], REASON_LENGTH,
                                                   placeholder="..."),
                        "revoked_on": templates.vietnamese_day(data["revoked_at"])},
                       correlation_id)


def _to_learner(template: str, dedupe_key: str, data: dict, values: dict,
                correlation_id: str) -> Wanted:
    """A message to the learner an event names, about their enrollment, read by whom the
    event's scope allows."""
    return Wanted(template, dedupe_key, data["learner_id"], data["enrollment_id"],
                  {"full_name": data["full_name"], "course_title": data["course_title"],
                   **values}, correlation_id, scope_of(data))
