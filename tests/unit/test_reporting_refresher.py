"""reporting's refresher paces its rounds: one per REFRESH_SECONDS during a burst, and
after a long round (a province's whole campaign to read) long enough that rounds hold at
most a tenth of the time. The store is replaced by a recorder of the communes each round
recomputes; the clock by one the test moves."""
import pytest

from services.reporting import dependencies, repository


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def refresher(monkeypatch, round_seconds: float) -> tuple[dependencies.Refresher, list]:
    clock, rounds = Clock(), []

    def refresh(db, communes, active_days):
        rounds.append(list(communes))
        clock.now += round_seconds

    monkeypatch.setattr(repository, "refresh", refresh)
    monkeypatch.setattr(repository, "known_communes", lambda db: [])
    monkeypatch.setattr(repository, "communes_with_facts", lambda db: ["00004"])
    loop = dependencies.Refresher(db=None, active_days=7, sweep_seconds=1800,
                                  refresh_seconds=1.0, monotonic=clock)
    return loop, rounds


def test_a_quick_round_is_followed_a_second_later_by_one_with_every_commune_since(monkeypatch):
    loop, rounds = refresher(monkeypatch, round_seconds=0.05)
    loop.run_once()  # the first: every commune with facts
    for commune in ("14845", "15916", "14845"):
        loop.mark(commune)
    assert loop.run_once() is False  # the loop waits its linger before the next
    assert rounds == [["00004"], ["14845", "15916"]]
    assert loop.linger_seconds == 1.0


def test_after_a_long_round_the_next_waits_nine_times_as_long(monkeypatch):
    loop, rounds = refresher(monkeypatch, round_seconds=2.0)
    loop.run_once()
    assert loop.linger_seconds == pytest.approx(18.0)  # rounds hold a tenth of the time
    loop.mark("14845")
    loop.run_once()
    assert rounds[-1] == ["14845"] and loop.linger_seconds == pytest.approx(18.0)
