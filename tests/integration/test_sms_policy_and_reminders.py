"""The send policy and the reminder planner against a real SecantusDB (and, where a send
is made, the gateway simulator), with a controllable clock in Asia/Ho_Chi_Minh time."""
import time

import pytest

from hocvu.leases import claim_batch
from services.notifications import domain, optout, policy, reminders, repository, templates
from services.notifications.dispatcher import DispatchLoop
from services.notifications.providers import SimulatorProvider
from tests.support.sms import Clock, local, sms_settings

pytestmark = pytest.mark.integration

PHONE = "+84912345678"
OTHER_PHONE = "+84987654321"


def reminder(n, to=PHONE):
    return {"_id": f"m{n}", "template": templates.LESSON_REMINDER,
            "sms_class": policy.REMINDER, "to": to}


def confirmation(to=PHONE):
    return {"_id": "c", "template": templates.ENROLLMENT_CONFIRMED,
            "sms_class": policy.TRANSACTIONAL, "to": to}


def went_out(store, message: dict, n: int, at) -> None:
    """The provider accepted an SMS like `message` (the dispatcher's record of it): what the
    daily caps count."""
    sent = {**message, "_id": f"{message['_id']}-sent-{n}"}
    repository.record(store.db, [(sent, domain.Settlement(domain.ACCEPTED, {
        "to": message["to"], "sms_class": message["sms_class"]}))], at)


def test_quiet_hours_hold_reminders_but_not_transactional_messages(notifications_store):
    clock = Clock(local(2026, 11, 25, 22, 0))
    rules = policy.SendPolicy(notifications_store.db, sms_settings(), clock)

    held = rules.decide(reminder(1))
    assert (held.action, held.reason, held.until) == (
        policy.DEFER, policy.QUIET_HOURS, local(2026, 11, 26, 7, 0))
    assert rules.decide(confirmation()).action == policy.SEND

    clock.now = local(2026, 11, 26, 0, 30)   # after midnight: still the same morning
    assert rules.decide(reminder(1)).until == local(2026, 11, 26, 7, 0)
    clock.now = local(2026, 11, 26, 7, 0)
    assert rules.decide(reminder(1)).action == policy.SEND


def test_at_most_three_reminders_per_number_per_local_day(notifications_store):
    clock = Clock(local(2026, 11, 25, 9, 0))
    rules = policy.SendPolicy(notifications_store.db, sms_settings(), clock)

    decisions = rules.decide_many([reminder(n) for n in range(4)])
    assert [d.action for d in decisions] == [policy.SEND] * 3 + [policy.DEFER]
    assert decisions[3].reason == policy.DAILY_CAP
    assert decisions[3].until == local(2026, 11, 26, 7, 0)
    # two went out; the third did not (refused, or to be retried): it took nothing
    for n in range(2):
        went_out(notifications_store, reminder(n), n, clock())
    assert rules.decide(reminder(4)).action == policy.SEND
    went_out(notifications_store, reminder(4), 4, clock())
    assert rules.decide(reminder(5)).action == policy.DEFER
    # another number has its own three; transactional messages are not counted
    assert rules.decide(reminder(9, to=OTHER_PHONE)).action == policy.SEND
    assert rules.decide(confirmation()).action == policy.SEND
    went_out(notifications_store, confirmation(), 0, clock())
    assert rules.decide(reminder(9, to=OTHER_PHONE)).action == policy.SEND

    clock.now = local(2026, 11, 25, 21, 59)  # still the 25th locally (14:59 UTC)
    assert rules.decide(reminder(6)).reason == policy.DAILY_CAP
    clock.now = local(2026, 11, 26, 7, 0)    # the next local day (00:00 UTC): three again
    assert [d.action for d in rules.decide_many([reminder(n) for n in range(7, 11)])] == \
        [policy.SEND] * 3 + [policy.DEFER]


def test_transactional_sms_to_one_number_have_a_daily_ceiling_against_pumping(
        notifications_store):
    clock = Clock(local(2026, 11, 25, 23, 0))   # any hour: transactional
    rules = policy.SendPolicy(notifications_store.db, sms_settings(SMS_TRANSACTIONAL_DAILY_CAP=5),
                              clock)
    decisions = rules.decide_many([confirmation()] * 6)
    assert [d.action for d in decisions] == [policy.SEND] * 5 + [policy.DEFER]
    assert decisions[5].reason == policy.DAILY_CAP
    assert decisions[5].until == local(2026, 11, 26, 0, 0)   # the next local day, not 07:00
    for n in range(5):
        went_out(notifications_store, confirmation(), n, clock())
    assert rules.decide(confirmation()).action == policy.DEFER
    assert rules.decide(confirmation(to=OTHER_PHONE)).action == policy.SEND
    assert rules.decide(reminder(1, to=OTHER_PHONE)).action == policy.DEFER  # quiet hours
    clock.now = local(2026, 11, 26, 0, 0)
    assert rules.decide(confirmation()).action == policy.SEND
    unlimited = policy.SendPolicy(notifications_store.db,
                                  sms_settings(SMS_TRANSACTIONAL_DAILY_CAP=0), clock)
    assert all(d.action == policy.SEND for d in unlimited.decide_many([confirmation()] * 30))


def test_opt_out_and_back_in(notifications_store):
    clock = Clock(local(2026, 11, 25, 10, 0))
    rules = policy.SendPolicy(notifications_store.db, sms_settings(), clock)
    optouts = notifications_store.db.sms_optouts

    optout.set_opt_out(optouts, PHONE, True, "sms", clock())
    suppressed = rules.decide(reminder(1))
    assert (suppressed.action, suppressed.reason) == (policy.SUPPRESS, policy.OPTED_OUT)
    assert rules.decide(confirmation()).action == policy.SEND
    assert rules.decide(reminder(2, to=OTHER_PHONE)).action == policy.SEND

    optout.set_opt_out(optouts, PHONE, False, "api", clock())
    assert rules.decide(reminder(3)).action == policy.SEND


def _queue(store, n, template, to=PHONE, now=None):
    store.db.contacts.update_one({"_id": f"lrn-{to}"}, {"$set": {"phone": to}}, upsert=True)
    return repository.create(store.db, template, f"{template}:{n}", f"lrn-{to}", f"enr-{n}",
                             {"full_name": "Vũ Đức Anh", "course_title": "Kỹ năng số",
                              "days": 3, "lesson_title": "Bài 1", "verification_code": "K7QM",
                              "verify_url": "http://v.example.test/K7QM"}, "corr", now, True)


def test_the_dispatcher_defers_and_later_sends_never_drops(
        notifications_store, sms_gateway, sms_outbox):
    db = notifications_store.db
    clock = Clock(local(2026, 11, 25, 23, 0))
    settings = sms_settings(SMS_GATEWAY_URL=sms_gateway)
    loop = DispatchLoop(db.messages, SimulatorProvider(settings), settings,
                        policy.SendPolicy(db, settings, clock), clock)
    night_reminder = _queue(notifications_store, 1, templates.LESSON_REMINDER, now=clock())
    night_confirmation = _queue(notifications_store, 2, templates.ENROLLMENT_CONFIRMED,
                                now=clock())

    loop.run_once()
    assert repository.view(db, night_confirmation["_id"])["status"] == domain.ACCEPTED
    held = repository.view(db, night_reminder["_id"])
    assert held["status"] == domain.QUEUED and held["held_reason"] == policy.QUIET_HOURS
    assert held["next_attempt_at"] == local(2026, 11, 26, 7, 0)
    assert domain.reason(held) == policy.QUIET_HOURS
    assert [m["request_id"] for m in sms_outbox()] == [night_confirmation["_id"]]

    clock.now = local(2026, 11, 26, 6, 59)
    loop.run_once()
    assert repository.view(db, night_reminder["_id"])["status"] == domain.QUEUED
    clock.now = local(2026, 11, 26, 7, 0)
    loop.run_once()
    assert repository.view(db, night_reminder["_id"])["status"] == domain.ACCEPTED
    assert len(sms_outbox()) == 2


def test_the_dispatcher_holds_the_fourth_reminder_of_the_day_until_tomorrow(
        notifications_store, sms_gateway, sms_outbox):
    db = notifications_store.db
    clock = Clock(local(2026, 11, 25, 9, 0))
    settings = sms_settings(SMS_GATEWAY_URL=sms_gateway)
    loop = DispatchLoop(db.messages, SimulatorProvider(settings), settings,
                        policy.SendPolicy(db, settings, clock), clock)
    queued = [_queue(notifications_store, n, templates.LESSON_REMINDER, now=clock())
              for n in range(4)]

    loop.run_once()
    statuses = [repository.view(db, m["_id"]) for m in queued]
    assert sorted(m["status"] for m in statuses) == [domain.ACCEPTED] * 3 + [domain.QUEUED]
    fourth = next(m for m in statuses if m["status"] == domain.QUEUED)
    assert fourth["held_reason"] == policy.DAILY_CAP
    assert fourth["next_attempt_at"] == local(2026, 11, 26, 7, 0)
    assert len(sms_outbox()) == 3

    clock.now = local(2026, 11, 26, 7, 0)
    loop.run_once()
    assert repository.view(db, fourth["_id"])["status"] == domain.ACCEPTED


def test_a_reminder_to_a_number_that_opted_out_is_suppressed(
        notifications_store, sms_gateway, sms_outbox):
    db = notifications_store.db
    clock = Clock(local(2026, 11, 25, 10, 0))
    settings = sms_settings(SMS_GATEWAY_URL=sms_gateway)
    loop = DispatchLoop(db.messages, SimulatorProvider(settings), settings,
                        policy.SendPolicy(db, settings, clock), clock)
    optout.set_opt_out(db.sms_optouts, PHONE, True, "sms", clock())
    stopped = _queue(notifications_store, 1, templates.LESSON_REMINDER, now=clock())
    still_sent = _queue(notifications_store, 2, templates.CERTIFICATE_ISSUED, now=clock())

    loop.run_once()
    suppressed = repository.view(db, stopped["_id"])
    assert suppressed["status"] == domain.SUPPRESSED
    assert domain.learner_status(suppressed) == "not_sent"
    assert domain.reason(suppressed) == policy.OPTED_OUT
    assert [m["request_id"] for m in sms_outbox()] == [still_sent["_id"]]


# --- reminders ---------------------------------------------------------------------------

ENROLLMENT = "enr-r1"
LEARNER = "lrn-r1"
LESSONS = [{"id": "l1", "title": "Điện thoại thông minh", "position": 1},
           {"id": "l2", "title": "Dịch vụ công trực tuyến", "position": 2},
           {"id": "l3", "title": "An toàn trên mạng", "position": 3}]


def enrolled_data(at):
    return {"enrollment_id": ENROLLMENT, "learner_id": LEARNER,
            "course_id": "citizen-digital-basics", "course_title": "Kỹ năng số cơ bản",
            "full_name": "Nguyễn Thị Hoa", "group": "citizen", "province_code": "38",
            "commune_code": "14845", "enrolled_at": at}


def about(**extra):
    return {"enrollment_id": ENROLLMENT, "learner_id": LEARNER,
            "course_id": "citizen-digital-basics", **extra}


def reminder_texts(store):
    return [m["text"] for m in store.db.messages.find(
        {"enrollment_id": ENROLLMENT, "template": templates.LESSON_REMINDER}).sort("created_at")]


@pytest.fixture
def enrolled(notifications_store):
    start = local(2026, 11, 2, 10, 0)
    days = reminders.ReminderDays(sms_settings(REMINDER_DAYS_BY_COURSE="citizen-digital-basics=3"))

    db = notifications_store.db
    reminders.on_enrolled(db, enrolled_data(start), days, start)
    reminders.on_lessons_assigned(db, about(lessons=LESSONS, assigned_at=start), start)
    repository.remember_contact(db, LEARNER, PHONE, start, start)
    return start, days


def planner(store, days, clock, **config):
    return reminders.ReminderPlanner(store, sms_settings(REMINDER_LEASE_SECONDS=60, **config),
                                     days, clock)


def test_a_reminder_after_n_days_without_progress_naming_the_next_lesson_once(
        notifications_store, enrolled):
    start, days = enrolled
    clock = Clock(start + reminders.timedelta(days=2, hours=23))
    planner(notifications_store, days, clock).run_once()
    assert reminder_texts(notifications_store) == []

    clock.now = start + reminders.timedelta(days=3)
    first = planner(notifications_store, days, clock)
    first.run_once()
    first.run_once()
    # a restart: a new planner on the same store sends nothing more
    planner(notifications_store, days, clock).run_once()
    texts = reminder_texts(notifications_store)
    assert len(texts) == 1
    assert "Dien thoai thong minh" in texts[0] and "Nguyen Thi Hoa" in texts[0]
    assert "3 ngay" in texts[0]

    # progress on day 4 moves the next reminder to day 7 (4 + 3), not day 6 (3 + 3)
    reminders.on_lesson_completed(
        notifications_store.db,
        about(lesson_id="l1", score=90, completed_at=start + reminders.timedelta(days=4)),
        clock())
    clock.now = start + reminders.timedelta(days=6, hours=23)
    planner(notifications_store, days, clock).run_once()
    assert len(reminder_texts(notifications_store)) == 1
    clock.now = start + reminders.timedelta(days=7)
    planner(notifications_store, days, clock).run_once()
    texts = reminder_texts(notifications_store)
    assert len(texts) == 2 and "Dich vu cong truc tuyen" in texts[1]

    # completion ends it for good
    reminders.stop(notifications_store.db, ENROLLMENT, reminders.COMPLETED, clock())
    clock.now = start + reminders.timedelta(days=60)
    planner(notifications_store, days, clock).run_once()
    assert len(reminder_texts(notifications_store)) == 2


def test_a_planner_that_died_after_claiming_loses_no_reminder(notifications_store, enrolled):
    start, days = enrolled
    clock = Clock(start + reminders.timedelta(days=3, minutes=1))
    # a planner claims the due enrollment under a short lease, then dies before it writes
    claimed = claim_batch(notifications_store.db.reminders,
                          {"status": reminders.ACTIVE, "next_reminder_at": {"$lte": clock()}},
                          [("next_reminder_at", 1)], 10, reminders.timedelta(seconds=0.3))
    assert [state["_id"] for state in claimed] == [ENROLLMENT]
    planner(notifications_store, days, clock).run_once()
    assert reminder_texts(notifications_store) == []  # still under the dead planner's lease

    deadline = time.monotonic() + 10
    while not reminder_texts(notifications_store) and time.monotonic() < deadline:
        time.sleep(0.1)  # the lease runs out on the store's real clock
        planner(notifications_store, days, clock).run_once()
    assert len(reminder_texts(notifications_store)) == 1


def test_a_cancelled_enrollment_is_never_reminded(notifications_store, enrolled):
    start, days = enrolled
    reminders.stop(notifications_store.db, ENROLLMENT, reminders.CANCELLED, start)
    clock = Clock(start + reminders.timedelta(days=30))
    planner(notifications_store, days, clock).run_once()
    assert reminder_texts(notifications_store) == []
    state = notifications_store.db.reminders.find_one({"_id": ENROLLMENT})
    assert state["status"] == reminders.CANCELLED and state["next_reminder_at"] is None


def test_no_reminder_once_every_lesson_is_done(notifications_store, enrolled):
    start, days = enrolled
    for n, lesson in enumerate(LESSONS, start=1):
        reminders.on_lesson_completed(
            notifications_store.db, about(lesson_id=lesson["id"], score=None,
                                          completed_at=start + reminders.timedelta(hours=n)),
            start)
    clock = Clock(start + reminders.timedelta(days=10))
    planner(notifications_store, days, clock).run_once()
    assert reminder_texts(notifications_store) == []


def test_progress_that_arrives_before_the_enrollment_still_counts(notifications_store):
    start = local(2026, 11, 2, 10, 0)
    days = reminders.ReminderDays(sms_settings(REMINDER_DAYS=3))
    progress_at = start + reminders.timedelta(days=1)
    reminders.on_lesson_completed(
        notifications_store.db, about(lesson_id="l1", score=None, completed_at=progress_at),
        progress_at)
    assert notifications_store.db.reminders.find_one({"_id": ENROLLMENT})["next_reminder_at"] \
        is None  # nothing to remind of before the enrollment is known
    reminders.on_enrolled(
        notifications_store.db, enrolled_data(start), days, progress_at)
    state = notifications_store.db.reminders.find_one({"_id": ENROLLMENT})
    assert state["next_reminder_at"] == progress_at + reminders.timedelta(days=3)
    assert state["completed_lesson_ids"] == ["l1"]


def test_our_token_bucket_puts_messages_back_without_counting_an_attempt(
        notifications_store, sms_gateway, sms_outbox):
    from services.notifications import providers
    db = notifications_store.db
    clock = Clock(local(2026, 11, 25, 10, 0))
    settings = sms_settings(SMS_GATEWAY_URL=sms_gateway, SMS_SIMULATOR_RATE_PER_SECOND=0.01,
                            SMS_SIMULATOR_BURST=1)
    loop = DispatchLoop(db.messages, providers.adapter("simulator", settings), settings,
                        policy.SendPolicy(db, settings, clock), clock)
    queued = [_queue(notifications_store, n, templates.ENROLLMENT_CONFIRMED, now=clock())
              for n in range(3)]

    loop.run_once()
    stored = [repository.view(db, m["_id"]) for m in queued]
    assert sorted(m["status"] for m in stored) == [domain.ACCEPTED] + [domain.QUEUED] * 2
    for waiting in (m for m in stored if m["status"] == domain.QUEUED):
        assert waiting["attempts"] == 0
        assert waiting["held_reason"] == "simulator rate limit (ours)"
        assert waiting["next_attempt_at"] > clock()
    assert len(sms_outbox()) == 1


# --- sign-in codes ---------------------------------------------------------------------------

def _queue_code(store, opener_keys, request_id, code, now, expires_at):
    from hocvu import sealing
    from services.notifications import sign_in_codes
    sealer = sealing.Sealer(opener_keys["public"])
    data = {"request_id": request_id, "phone": sealer.seal(PHONE), "code": sealer.seal(code),
            "expires_at": expires_at}
    return sign_in_codes.create(store.db, sealing.Opener(opener_keys["private"]), data, "corr",
                                now, True)


def test_a_code_sms_that_waited_past_its_expiry_fails_and_is_never_sent(
        notifications_store, sms_gateway, sms_outbox):
    from datetime import timedelta

    from hocvu import sealing
    db = notifications_store.db
    private, public = sealing.new_key_pair()
    keypair = {"private": private, "public": public}
    clock = Clock(local(2026, 11, 25, 10, 0))
    settings = sms_settings(SMS_GATEWAY_URL=sms_gateway, NOTIFICATIONS_SEALING_PRIVATE_KEY=private)
    loop = DispatchLoop(db.messages, SimulatorProvider(settings), settings,
                        policy.SendPolicy(db, settings, clock), clock)
    stale = _queue_code(notifications_store, keypair, "req-stale", "111111", clock(),
                        expires_at=clock() + timedelta(seconds=300))
    fresh = _queue_code(notifications_store, keypair, "req-fresh", "222222", clock(),
                        expires_at=clock() + timedelta(seconds=600))

    clock.advance(seconds=300)   # the first code's last moment has passed, not the second's
    loop.run_once()
    failed = repository.view(db, stale["_id"])
    assert failed["status"] == domain.FAILED and failed["last_error"] == "code expired"
    assert domain.reason(failed) == "code expired" and failed["attempts"] == 0
    assert repository.view(db, fresh["_id"])["status"] == domain.ACCEPTED
    sent = sms_outbox()
    assert [m["request_id"] for m in sent] == [fresh["_id"]]
    assert "222222" in sent[0]["text"] and not any("111111" in m["text"] for m in sent)

    clock.advance(hours=1)       # and a failed code message stays failed
    loop.run_once()
    assert repository.view(db, stale["_id"])["status"] == domain.FAILED
    assert len(sms_outbox()) == 1


def test_a_rounds_messages_are_decided_together_within_every_cap(notifications_store):
    clock = Clock(local(2026, 11, 25, 9, 0))
    rules = policy.SendPolicy(notifications_store.db, sms_settings(SMS_TRANSACTIONAL_DAILY_CAP=2),
                              clock)
    optout.set_opt_out(notifications_store.db.sms_optouts, OTHER_PHONE, True, "sms", clock())
    one_round = [*(reminder(n) for n in range(4)), confirmation(), confirmation(),
                 reminder(9, to=OTHER_PHONE), confirmation()]
    decided = rules.decide_many(one_round)
    assert [d.action for d in decided] == [policy.SEND] * 3 + [policy.DEFER] + \
        [policy.SEND, policy.SEND, policy.SUPPRESS, policy.DEFER]
    assert (decided[3].reason, decided[7].reason) == (policy.DAILY_CAP, policy.DAILY_CAP)
    assert notifications_store.db.sms_outcomes.count_documents({}) == 0  # nothing written
