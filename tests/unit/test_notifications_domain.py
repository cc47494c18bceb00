"""notifications' rules without a store: what each event asks to be told, and how a
message's status reads to a learner."""
from datetime import datetime, timezone

from services.notifications import domain, templates

LEARNER = {"learner_id": "lrn-1", "enrollment_id": "enr-1", "full_name": "Vũ Đức Anh",
           "course_title": "Kỹ năng số", "province_code": "38", "commune_code": "15916",
           "learner_subject": "subj-1"}
SCOPE = {"province_code": "38", "commune_code": "15916", "learner_subject": "subj-1"}


def test_each_event_asks_for_one_message_known_by_what_it_tells():
    confirmed = domain.enrollment_confirmation(LEARNER, "corr-1")
    assert confirmed == domain.Wanted(
        templates.ENROLLMENT_CONFIRMED, "enrollment_confirmed:enr-1", "lrn-1", "enr-1",
        {"full_name": "Vũ Đức Anh", "course_title": "Kỹ năng số"}, "corr-1", SCOPE)
    issued = domain.certificate_notice({**LEARNER, "certificate_id": "cert-1",
                                        "verification_code": "K7QM",
                                        "verify_url": "http://v.example.test/K7QM"}, "corr-2")
    assert (issued.template, issued.dedupe_key) == (templates.CERTIFICATE_ISSUED,
                                                    "certificate_issued:cert-1")
    assert issued.values["verify_url"] == "http://v.example.test/K7QM"
    assert issued.scope == SCOPE


def test_a_revocation_says_when_in_vietnam_and_why_in_at_most_one_sms_worth():
    revoked = domain.revocation_notice({
        **LEARNER, "certificate_id": "cert-1", "serial": "HV-38-2026-000001",
        "reason": "sai thông tin " * 30,
        "revoked_at": datetime(2026, 11, 25, 18, 0, tzinfo=timezone.utc)}, "corr-3")
    assert revoked.dedupe_key == "certificate_revoked:cert-1"
    assert revoked.values["revoked_on"] == "26/11/2026"
    assert len(revoked.values["reason"]) <= domain.REASON_LENGTH
    assert revoked.values["reason"].endswith("...")


def test_what_a_learner_is_shown_of_each_status():
    assert domain.learner_status({"status": domain.QUEUED}) == "pending"
    assert domain.learner_status({"status": "something new"}) == "unknown"
    assert domain.reason({"status": domain.AWAITING_CONTACT}) == \
        "waiting for the learner's phone number"
    assert domain.reason({"status": domain.QUEUED, "held_reason": "quiet_hours",
                          "last_error": "HTTP 503"}) == "quiet_hours"
    assert domain.reason({"status": domain.DELIVERED, "last_error": "old"}) is None


def test_only_a_vietnamese_e164_number_is_one():
    assert domain.is_vietnamese_number("+84912345678")
    assert not domain.is_vietnamese_number("0912345678")
    assert not domain.is_vietnamese_number("+849123456789")


NOW = datetime(2026, 12, 7, 3, 0, tzinfo=timezone.utc)


def _outcomes(*kinds):
    return [{"kind": kind, "fields": {}} for kind in kinds]


def test_a_delivery_report_settles_anything_but_a_delivered_message():
    reported = datetime(2026, 12, 7, 2, 59, tzinfo=timezone.utc)
    settled = domain.report_settlement({"source": "esms", "status": "delivered",
                                        "provider_message_id": "e-1",
                                        "delivered_at": reported}, NOW)
    assert settled.kind == domain.DELIVERED
    assert settled.fields == {"delivered_at": reported, "provider_message_id": "e-1"}
    for before in (domain.ACCEPTED, domain.FAILED, domain.UNDELIVERED, domain.UNKNOWN,
                   domain.GATEWAY_UNDELIVERED):
        assert domain.raises({}, _outcomes(before), domain.DELIVERED)
    assert domain.raises({}, [], domain.DELIVERED)  # it overtook the send's own answer
    assert not domain.raises({}, _outcomes(domain.ACCEPTED, domain.DELIVERED),
                             domain.DELIVERED)


def test_a_failure_report_leaves_what_settled_first_and_the_gateways_leaves_unknown_too():
    theirs = domain.report_settlement({"source": "speedsms", "status": "undelivered",
                                       "detail": "x" * 300}, NOW)
    assert theirs.kind == domain.UNDELIVERED
    assert len(theirs.fields["last_error"]) == 200 and theirs.fields["reported_at"] == NOW
    assert domain.raises({}, _outcomes(domain.ACCEPTED, domain.UNKNOWN), domain.UNDELIVERED)
    assert not domain.raises({}, _outcomes(domain.FAILED), domain.UNDELIVERED)
    gateway = domain.report_settlement({"source": "gateway", "status": "undelivered",
                                        "detail": "expired"}, NOW)
    assert (gateway.kind, gateway.fields) == (domain.GATEWAY_UNDELIVERED,
                                              {"last_error": "expired"})
    assert domain.raises({}, _outcomes(domain.ACCEPTED), domain.GATEWAY_UNDELIVERED)
    assert not domain.raises({}, _outcomes(domain.ACCEPTED, domain.UNKNOWN),
                             domain.GATEWAY_UNDELIVERED)
    # a message of an older release, settled on its record
    assert not domain.raises({"status": domain.DELIVERED}, [], domain.UNDELIVERED)


def test_a_status_is_derived_from_outcomes_in_whatever_order_they_came():
    message = {"_id": "m-1", "to": None, "created_at": NOW}
    accepted = {"kind": domain.ACCEPTED, "to": "+84912345678", "fields": {"accepted_at": NOW}}
    delivered = {"kind": domain.DELIVERED, "fields": {"delivered_at": NOW}}
    for order in ([accepted, delivered], [delivered, accepted]):
        view = domain.derived(message, order, None, None)
        assert (view["status"], view["to"], view["delivered_at"]) == (
            domain.DELIVERED, "+84912345678", NOW)
    gateway = {"kind": domain.GATEWAY_UNDELIVERED, "fields": {"last_error": "expired"}}
    view = domain.derived(message, [accepted, gateway], None, None)
    assert (view["status"], domain.reason(view)) == (domain.UNDELIVERED, "expired")


def test_a_message_without_outcomes_is_where_its_entry_is():
    message = {"_id": "m-1", "to": None, "created_at": NOW}
    queued = {"_id": "m-1", "to": "+84912345678", "attempts": 2, "held_reason": "quiet_hours",
              "next_attempt_at": NOW}
    view = domain.derived(message, [], queued, None)
    assert (view["status"], view["attempts"], domain.reason(view), view["to"]) == (
        domain.QUEUED, 2, "quiet_hours", "+84912345678")
    assert domain.derived(message, [], None, {"_id": "m-1"})["status"] == \
        domain.AWAITING_CONTACT
    assert domain.derived({**message, "status": domain.FAILED}, [], None, None)["status"] \
        == domain.FAILED  # an older release's record


def test_a_suppressed_reminder_is_an_end_but_not_one_counted_as_failed():
    assert domain.SUPPRESSED in domain.FINAL and domain.SUPPRESSED not in domain.ANNOUNCED
