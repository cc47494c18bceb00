"""Lessons' rules, in plain Python: the catalog, a learner's lesson plan, completion.

Nothing here touches the store or the broker; the service loads and saves these objects
and publishes the events their methods return.
"""
from dataclasses import dataclass, field, replace
from datetime import datetime

ASSIGNED, COMPLETED = "assigned", "completed"


class UnknownLesson(Exception):
    pass


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

    @classmethod
    def from_seed(cls, entry: dict) -> "Course":
        lessons = tuple(Lesson(id=item["id"], title=item["title"], position=number)
                        for number, item in enumerate(entry["lessons"], start=1))
        if len(lessons) < 3:
            raise ValueError(f"course {entry['id']} needs at least 3 lessons")
        return cls(id=entry["id"], title=entry["title"], group=entry["group"], lessons=lessons)


@dataclass(frozen=True)
class LessonProgress:
    id: str
    title: str
    position: int
    status: str = ASSIGNED
    completed_at: datetime | None = None
    score: int | None = None
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

    @classmethod
    def assign(cls, enrollment_id: str, course: Course, learner: Learner,
               correlation_id: str, now: datetime) -> tuple["LessonPlan", list]:
        plan = cls(enrollment_id=enrollment_id, course_id=course.id, course_title=course.title,
                   learner=learner, correlation_id=correlation_id, assigned_at=now,
                   lessons=[LessonProgress(l.id, l.title, l.position) for l in course.lessons])
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

    def complete_lesson(self, lesson_id: str, score: int | None, now: datetime,
                        reason: str | None = None) -> list:
        """Mark a lesson done; return the events that follow. Completing twice changes nothing
        (the first completion's reason stays)."""
        index = next((i for i, l in enumerate(self.lessons) if l.id == lesson_id), None)
        if index is None:
            raise UnknownLesson(lesson_id)
        if self.lessons[index].status == COMPLETED:
            return []
        self.lessons[index] = replace(self.lessons[index], status=COMPLETED,
                                      completed_at=now, score=score, reason=reason)
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
