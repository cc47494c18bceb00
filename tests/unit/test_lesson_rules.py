"""Strict or free order, the pass mark, and a cancelled plan: lessons' rules in plain Python."""
from datetime import datetime, timezone

import pytest
import yaml

from hocvu import settings
from services.lessons import domain as lessons
from services.lessons.repository import SEED_FILE, course_from_doc, course_to_doc, plan_from_doc, \
    plan_to_doc
from services.lessons.settings import LessonsSettings

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)


def plan(order="strict", pass_mark=50):
    entry = {"id": "c", "title": "Kỹ năng số", "group": "worker", "order": order,
             "lessons": [{"id": f"l{n}", "title": f"Bài {n}"} for n in (1, 2, 3)]}
    if pass_mark is not None:
        entry["pass_mark"] = pass_mark
    learner = lessons.Learner("lrn", "Lê Văn Đức", "worker", "38", "14845")
    return lessons.LessonPlan.assign("enr", lessons.Course.from_seed(entry), learner, "corr",
                                     NOW)[0]


def test_in_strict_order_a_lesson_waits_for_the_first_one_missing_before_it():
    strict = plan()
    with pytest.raises(lessons.CompletedOutOfOrder) as refused:
        strict.complete_lesson("l3", 90, NOW)
    assert refused.value.blocking.id == "l1"
    strict.complete_lesson("l1", 90, NOW)
    with pytest.raises(lessons.CompletedOutOfOrder) as refused:
        strict.complete_lesson("l3", 90, NOW)
    assert refused.value.blocking.id == "l2"
    assert strict.lessons[2].attempts == 0          # a refused completion records nothing
    strict.complete_lesson("l2", 90, NOW)
    assert [e for e, _ in strict.complete_lesson("l3", 90, NOW)] == ["lesson_completed",
                                                                       "course_completed"]


def test_in_free_order_any_lesson_completes_first():
    free = plan(order="free")
    assert [e for e, _ in free.complete_lesson("l3", 90, NOW)] == ["lesson_completed"]


def test_a_score_below_the_pass_mark_is_an_attempt_that_completes_nothing():
    strict = plan(pass_mark=50)
    assert strict.complete_lesson("l1", 49, NOW) == []
    first = strict.lessons[0]
    assert (first.status, first.attempts, first.last_score, first.score) == (
        lessons.ASSIGNED, 1, 49, None)
    with pytest.raises(lessons.CompletedOutOfOrder):   # l1 still blocks l2
        strict.complete_lesson("l2", 90, NOW)
    assert [e for e, _ in strict.complete_lesson("l1", 50, NOW)] == ["lesson_completed"]
    first = strict.lessons[0]
    assert (first.status, first.attempts, first.last_score, first.score) == (
        lessons.COMPLETED, 2, 50, 50)


def test_with_a_pass_mark_a_learner_gives_a_score_and_staff_may_record_attendance():
    strict = plan(pass_mark=50)
    with pytest.raises(lessons.ScoreRequired):
        strict.complete_lesson("l1", None, NOW, score_required=True)
    assert [e for e, _ in strict.complete_lesson("l1", None, NOW)] == ["lesson_completed"]
    assert [e for e, _ in plan(pass_mark=None).complete_lesson(
        "l1", None, NOW, score_required=True)] == ["lesson_completed"]


def test_a_cancelled_plan_completes_nothing_more():
    strict = plan()
    strict.status = lessons.CANCELLED
    with pytest.raises(lessons.PlanCancelled):
        strict.complete_lesson("l1", 90, NOW)


def test_the_seed_sets_order_and_pass_mark_of_every_course():
    courses = [lessons.Course.from_seed(c)
               for c in yaml.safe_load(SEED_FILE.read_text())["courses"]]
    assert {c.id: (c.order, c.pass_mark) for c in courses} == {
        "official-digital-basics": ("strict", 70), "student-digital-basics": ("free", 50),
        "worker-digital-basics": ("strict", 50), "citizen-digital-basics": ("strict", 50)}


@pytest.mark.parametrize("rules", [{"order": "random"}, {"pass_mark": 101}, {"pass_mark": "50"}])
def test_a_seed_with_rules_out_of_bounds_is_refused(rules):
    with pytest.raises(ValueError):
        lessons.Course.from_seed({"id": "c", "title": "t", "group": "worker", **rules,
                                  "lessons": [{"id": f"l{n}", "title": "t"} for n in (1, 2, 3)]})


def test_plans_and_courses_stored_before_the_rules_read_as_free_order_without_pass_mark():
    course = lessons.Course.from_seed({"id": "c", "title": "t", "group": "worker",
                                       "lessons": [{"id": f"l{n}", "title": "t"} for n in (1, 2, 3)]})
    old_course = {k: v for k, v in course_to_doc(course).items() if k not in ("order", "pass_mark")}
    assert course_from_doc(old_course) == course
    doc = plan_to_doc(plan())
    for key in ("order", "pass_mark", "status", "cancelled_at"):
        doc.pop(key)
    for lesson in doc["lessons"]:
        for key in ("attempts", "last_score", "last_attempt_at"):
            lesson.pop(key)
    old = plan_from_doc(doc)
    assert (old.order, old.pass_mark, old.status) == ("free", None, "active")
    assert [e for e, _ in old.complete_lesson("l3", 10, NOW)] == ["lesson_completed"]


def test_lessons_reads_no_key_of_its_own():
    # the kit's keys are the kit's to check; lessons' settings take none of them
    loaded = settings.load(LessonsSettings, {"AMQP_URI": "amqp://x", "EVENT_BATCH_MAX": "-1"},
                           "lessons")
    assert vars(loaded) == {}
