"""Notifications' rules, without I/O: the life of a message and what each event asks for.

A message is created once per thing worth telling (its `dedupe_key`), so a redelivered
event never makes a second SMS. Its record is written once; what happens to it after is
appended (outcomes, below) and its status derived. It waits in `awaiting_contact` until the
learner's phone number is known (learner_contact_registered may arrive after the event that
asks for the message), is `queued` for the dispatcher, `accepted` by the provider, and
`delivered` when the provider's delivery report comes back; `failed` if the provider refused it for good,
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

# An SMS's life is appended, never rewritten (repository.py): each thing that happens to a
# message after it is written (the provider accepted it, a report, a failure, the
# reconciler's verdict) is an outcome of its own, and the status shown is derived from the
# outcomes there are, whatever order they were written in. Each status outranks those it
# may replace: a delivery report wins over everything, even if it overtook the send's own
# answer or came after reconciliation said `unknown`; a failure we
# know of (never left) over a provider's report of non-delivery; that report over
# `unknown`; `unknown` over the gateway's own failure report (it gave up, it knows no more
# than we do); and any of them over `accepted`. A message without outcomes is `queued`
# (in the dispatcher's queue) or `awaiting_contact`.
GATEWAY_UNDELIVERED = "undelivered_gateway"  # an outcome's kind; shown as undelivered
# where each part of a message's life is kept (repository.py)
QUEUE, WAITING, OUTCOMES = "sms_queue", "sms_waiting", "sms_outcomes"
RECHECKS = "sms_rechecks"  # accepted messages the provider said were pending (reconcile.py)
RANK = {ACCEPTED: 1, GATEWAY_UNDELIVERED: 2, UNKNOWN: 3, SUPPRESSED: 4, UNDELIVERED: 5,
        FAILED: 6, DELIVERED: 7}
OUTCOME_KINDS = tuple(RANK)


def shown_status(kind: str) -> str:
    return UNDELIVERED if kind == GATEWAY_UNDELIVERED else kind


def outcome_id(message_id: str, kind: str) -> str:
    """An outcome's _id: one of each kind per message, so a repeated report (or a send
    recorded twice) is refused by the store rather than counted twice."""
    return f"{message_id}:{kind}"


def outcome_ids(message_ids, kinds=OUTCOME_KINDS) -> list[str]:
    """Every _id the outcomes of these messages may have (read through the _id index)."""
    return [outcome_id(message_id, kind) for message_id in message_ids for kind in kinds]


def leading(outcomes: list[dict]) -> dict | None:
    """The outcome that decides a message's status, or None without one."""
    return max(outcomes, key=lambda outcome: RANK[outcome["kind"]], default=None)


def raises(message: dict, outcomes: list[dict], kind: str) -> bool:
    """Would an outcome of `kind` change the status these outcomes of `message` give (or,
    for a message of an older release without outcomes, the status stored on it)?"""
    top = leading(outcomes)
    current = RANK[top["kind"]] if top else RANK.get(message.get("status"), 0)
    return RANK[kind] > current


def derived(message: dict, outcomes: list[dict], queued: dict | None,
            waiting: dict | None) -> dict:
    """The message as a learner or staff reads it: its stored record, with the status, the
    reason and the times its outcomes (or its place in the queue) give. A message of a
    release before outcomes keeps the status stored on it."""
    view = dict(message)
    for outcome in sorted(outcomes, key=lambda outcome: RANK[outcome["kind"]]):
        view.update(outcome.get("fields") or {})
        if outcome.get("to"):
            view["to"] = outcome["to"]
    top = leading(outcomes)
    if top is not None:
        view["status"] = shown_status(top["kind"])
    elif queued is not None:
        view.update(status=QUEUED, **{key: queued.get(key) for key in QUEUE_PROGRESS})
        view["to"] = queued.get("to")
    elif waiting is not None:
        view["status"] = AWAITING_CONTACT
    else:
        view.setdefault("status", QUEUED)  # written, its queue entry not yet (or lost)
    return view


# what the queue entry of a message says of it while it waits to be sent
QUEUE_PROGRESS = ("attempts", "held_reason", "last_error", "next_attempt_at")


@dataclass(frozen=True)
class Settlement:
    """Something that happened to a message: an outcome of `kind` (one of OUTCOME_KINDS)
    with `fields` for the message's view (accepted_at, last_error...)."""
    kind: str
    fields: dict


def report_settlement(report: dict, now) -> Settlement:
    """What a delivery report (contracts.SmsReportReceived's data) adds. The gateway's own
    failure report ranks below reconciliation's `unknown`; a provider's above it."""
    if report["status"] == DELIVERED:
        fields = {"delivered_at": report.get("delivered_at") or now}
        if report.get("provider_message_id"):
            fields["provider_message_id"] = report["provider_message_id"]
        return Settlement(DELIVERED, fields)
    if report["source"] == "gateway":
        return Settlement(GATEWAY_UNDELIVERED,
                          {"last_error": report.get("detail") or UNDELIVERED})
    return Settlement(UNDELIVERED, {"last_error": f"report: {report.get('detail')}"[:200],
                                    "reported_at": now})

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
                       enrollment_confirmation_key(data["enrollment_id"]), data, {},
                       correlation_id)


def enrollment_confirmation_key(enrollment_id: str) -> str:
    return f"enrollment_confirmed:{enrollment_id}"


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
