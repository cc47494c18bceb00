"""`python -m hocvu_tools.devstack.demo` (with `make run` going): a morning's work for the progress
page to show. Through the edge, as people do it: the province admin creates a facilitator for
a few communes of Thanh Hóa, who enrolls made-up learners there (hocvu_tools.devstack.population),
records some lessons taught in class, and completes whole courses for some learners, whose
certificates follow. Run it again for more; each run adds learners of its own.

    --learners 60 --communes 8 --seed N     (defaults; the seed picks the learners)
"""
import argparse
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from hocvu_tools.devstack import accounts, config
from hocvu_tools.devstack.population import learner
from hocvu_tools.devstack.processes import VAR
from hocvu_tools.devstack.stack import PROVINCE
from hocvu.reference import communes_of

# enough of each outcome to fill every column: a third finish, a third are halfway
FINISH, HALFWAY = 1 / 3, 1 / 3


@dataclass
class Edge:
    """The running platform as a tool outside it sees it: its edge, and the admin's password."""
    base_url: str
    admin_password: str

    def url(self, service: str, path: str = "") -> str:
        return f"{self.base_url}/api/{service}/{path.lstrip('/')}"


def load(platform, learners: int = 60, communes: int = 8, seed: int | None = None) -> dict:
    """Enroll `learners` across `communes` of the province and make progress; return what was
    done: {"enrolled", "lessons_completed", "courses_completed", "communes"}."""
    seed = int(time.time()) if seed is None else seed
    rng = random.Random(seed)
    places = sorted(c.code for c in communes_of(PROVINCE))
    chosen = rng.sample(places, communes)
    admin = accounts.province_admin(platform)
    facilitator = accounts.create_facilitator(platform, admin, f"demo-{seed}", chosen)
    courses = {c["group"]: c for c in requests.get(platform.url("lessons", "courses"),
                                                   timeout=30).json()}
    done = {"enrolled": 0, "lessons_completed": 0, "courses_completed": 0,
            "communes": sorted(chosen)}
    enrolled = []
    for n in range(learners):
        person = learner(seed * 10_000 + n, seed=seed).as_json()
        person["commune_code"] = chosen[n % len(chosen)]
        answer = requests.post(platform.url("enrollment", "enrollments"), timeout=30,
                               headers=facilitator.headers(),
                               json={"course_id": courses[person["group"]]["id"],
                                     "learner": person})
        if answer.status_code != 201:
            raise RuntimeError(f"enrolling learner {n}: {answer.status_code} {answer.text[:300]}")
        enrolled.append((answer.json()["id"], courses[person["group"]]))
        done["enrolled"] += 1
    for k, (enrollment_id, course) in enumerate(enrolled):
        share = k / len(enrolled)
        lessons = [lesson["id"] for lesson in  # in order: a strict course takes no other
                   sorted(course["lessons"], key=lambda lesson: lesson["position"])]
        if share < FINISH:
            taught = lessons
        elif share < FINISH + HALFWAY:
            taught = lessons[:len(lessons) // 2]
        else:
            continue
        _wait_for_plan(platform, facilitator, enrollment_id)
        for lesson_id in taught:
            answer = requests.post(
                platform.url("lessons", f"enrollments/{enrollment_id}/lessons/{lesson_id}/complete"),
                # passed: a score under the course's pass mark records an attempt and completes
                # nothing, and a strict course then refuses the next lesson
                json={"score": rng.randint(max(60, course.get("pass_mark") or 0), 100)},
                headers=facilitator.headers(), timeout=30)
            if answer.status_code != 200:
                raise RuntimeError(f"completing {lesson_id}: {answer.status_code} {answer.text[:300]}")
            done["lessons_completed"] += 1
        done["courses_completed"] += taught == lessons
    return done


def _wait_for_plan(platform, facilitator, enrollment_id: str, timeout: float = 60) -> None:
    """Lessons are assigned asynchronously (learner_enrolled -> lessons), within a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(platform.url("lessons", f"enrollments/{enrollment_id}"),
                        headers=facilitator.headers(), timeout=30).status_code == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"no lessons assigned to {enrollment_id} after {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m hocvu_tools.devstack.demo")
    parser.add_argument("--learners", type=int, default=60)
    parser.add_argument("--communes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    port = config.ports(os.environ)["edge"]
    secrets = config._read_secrets(Path(VAR) / "secrets.env")
    password = os.environ.get("BOOTSTRAP_ADMIN_PASSWORD") or secrets.get("BOOTSTRAP_ADMIN_PASSWORD")
    if not password:
        sys.exit("no admin password: start the platform with `make run` first")
    edge = Edge(f"http://127.0.0.1:{port}", password)
    done = load(edge, args.learners, args.communes, args.seed)
    print(f"enrolled {done['enrolled']} learners in {len(done['communes'])} communes "
          f"({', '.join(done['communes'])}); {done['lessons_completed']} lessons completed, "
          f"{done['courses_completed']} courses finished (their certificates follow within "
          f"seconds). Open {edge.base_url}/reporting/ and sign in as admin.")


if __name__ == "__main__":
    main()
