"""Lessons' rules, in plain Python: the catalog, a learner's lesson plan, completion.

Each course sets (catalog_seed.yaml) whether its lessons are taken in strict order (a lesson
completes only after every one before it: CompletedOutOfOrder names the first missing) or
in any order, and its pass mark: a completion with a score below it is recorded as an
attempt and completes nothing; a learner completing online gives their score; staff
recording an in-class lesson may record attendance without one. A plan keeps its course's
rules as they were when it was assigned. A cancelled plan completes nothing more
(PlanCancelled).

Nothing here touches the store or the broker; the service loads and saves these objects
and publishes the events their methods return.
"""
from dataclasses import dataclass, field, replace
from datetime import datetime

ASSIGNED, COMPLETED = "assigned", "completed"
ACTIVE, CANCELLED = "active", "cancelled"
STRICT, FREE = "strict", "free"


class UnknownLesson(Exception):
    pass


class PlanCancelled(Exception):
    """The enrollment was cancelled: its lessons stop."""


class CompletedOutOfOrder(Exception):
    """In a strict-order course, `blocking` (a LessonProgress) must be completed first."""

    def __init__(self, blocking):
        super().__init__(blocking.id)
        self.blocking = blocking


class ScoreRequired(Exception):
    """A learner completing a lesson of a course with a pass mark must give their score."""


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    position: int


@dataclass(frozen=True)
class Course:
    id: str
    title: str
    group: str
    lessons: tuple[Lesson, ...]
    order: str = FREE
    pass_mark: int | None = None   # 0..100; None: any completion completes

    @classmethod
    def from_seed(cls, entry: dict) -> "Course":
        lessons = tuple(Lesson(id=item["id"], title=item["title"], position=number)
                        for number, item in enumerate(entry["lessons"], start=1))
        if len(lessons) < 3:
            raise ValueError(f"course {entry['id']} needs at least 3 lessons")
        order, pass_mark = entry.get("order", FREE), entry.get("pass_mark")
        if order not in (STRICT, FREE):
            raise ValueError(f"course {entry['id']}: order is '{STRICT}' or '{FREE}'")
        if pass_mark is not None and not (isinstance(pass_mark, int) and 0 <= pass_mark <= 100):
            raise ValueError(f"course {entry['id']}: pass_mark is a whole number from 0 to 100")
        return cls(id=entry["id"], title=entry["title"], group=entry["group"], lessons=lessons,
                   order=order, pass_mark=pass_mark)


@dataclass(frozen=True)
class LessonProgress:
    id: str
    title: str
    position: int
    status: str = ASSIGNED
    completed_at: datetime | None = None
    score: int | None = None
    # every completion sent, passing or not: how many, and the last one's score and time
    attempts: int = 0
    last_score: int | None = None
    last_attempt_at: datetime | None = None
    # why it counts as done: None online; "session:<id>" when the learner was present in class
    reason: str | None = None


@dataclass
class Learner:
    """What lessons keeps of a learner, from learner_enrolled: enough to name them on a
    certificate and to report by commune and group."""
    learner_id: str
    full_name: str
    group: str
    province_code: str
    commune_code: str
    subject: str | None = None   # their sign-in subject (hocvu.auth), so they can see their plan


@dataclass
class LessonPlan:
    enrollment_id: str
    course_id: str
    course_title: str
    learner: Learner
    correlation_id: str
    assigned_at: datetime
    lessons: list[LessonProgress] = field(default_factory=list)
    completed_at: datetime | None = None
    # the course's rules when the plan was assigned (plans stored before them: free, none)
    order: str = FREE
    pass_mark: int | None = None
    status: str = ACTIVE
    cancelled_at: datetime | None = None

    @classmethod
    def assign(cls, enrollment_id: str, course: Course, learner: Learner,
               correlation_id: str, now: datetime) -> tuple["LessonPlan", list]:
        plan = cls(enrollment_id=enrollment_id, course_id=course.id, course_title=course.title,
                   learner=learner, correlation_id=correlation_id, assigned_at=now,
                   lessons=[LessonProgress(l.id, l.title, l.position) for l in course.lessons],
                   order=course.order, pass_mark=course.pass_mark)
        return plan, [("lessons_assigned", {
            "enrollment_id": enrollment_id, "learner_id": learner.learner_id,
            "course_id": course.id, "lesson_ids": [l.id for l in course.lessons],
            "lessons": [{"id": l.id, "title": l.title, "position": l.position}
                        for l in course.lessons],
            "assigned_at": now})]

    def visible_to(self, caller) -> bool:
        """Is this plan the caller's (a hocvu.auth.Principal) to see and to complete?"""
        return caller.may_see(self.learner.province_code, self.learner.commune_code,
                              self.learner.subject)

    @property
    def completed(self) -> bool:
        return self.completed_at is not None

    @property
    def cancelled(self) -> bool:
        return self.status == CANCELLED

    def complete_lesson(self, lesson_id: str, score: int | None, now: datetime,
                        score_required: bool = False, reason: str | None = None) -> list:
        """Record a completion; return the events that follow. Completing a completed lesson
        changes nothing (the first completion's reason stays); a score below the pass mark
        is recorded as an attempt only. `reason`: None online; "session:<id>" when the
        learner was present in class (attendance.py)."""
        if self.cancelled:
            raise PlanCancelled(self.enrollment_id)
        index = next((i for i, l in enumerate(self.lessons) if l.id == lesson_id), None)
        if index is None:
            raise UnknownLesson(lesson_id)
        lesson = self.lessons[index]
        if lesson.status == COMPLETED:
            return []
        if self.order == STRICT:
            blocking = next((l for l in self.lessons
                             if l.position < lesson.position and l.status != COMPLETED), None)
            if blocking:
                raise CompletedOutOfOrder(blocking)
        if self.pass_mark is not None and score is None and score_required:
            raise ScoreRequired(lesson_id)
        lesson = replace(lesson, attempts=lesson.attempts + 1, last_score=score,
                         last_attempt_at=now)
        if self.pass_mark is not None and score is not None and score < self.pass_mark:
            self.lessons[index] = lesson
            return []
        self.lessons[index] = replace(lesson, status=COMPLETED, completed_at=now, score=score,
                                      reason=reason)
        events = [("lesson_completed", {
            "enrollment_id": self.enrollment_id, "learner_id": self.learner.learner_id,
            "course_id": self.course_id, "lesson_id": lesson_id, "score": score,
            "completed_at": now})]
        if all(l.status == COMPLETED for l in self.lessons):
            self.completed_at = now
            events.append(("course_completed", {
                "enrollment_id": self.enrollment_id, "learner_id": self.learner.learner_id,
                "course_id": self.course_id, "course_title": self.course_title,
                "full_name": self.learner.full_name, "group": self.learner.group,
                "province_code": self.learner.province_code,
                "commune_code": self.learner.commune_code,
                "learner_subject": self.learner.subject, "completed_at": now}))
        return events
