"""The benchmark's arithmetic: percentiles, the sustainable rate, the count checks and the
profile summary. Pure functions; the harness itself runs in tests/bench."""
from hocvu_tools.bench.__main__ import (check_bulk, check_burst, derive, sustainable_rate,
                                        targets)
from hocvu_tools.bench.profiling import hottest
from hocvu_tools.bench.timeline import percentiles


def stage(rate, accepted, p99, errors=None):
    return {"offered_per_s": rate, "succeeded_per_s": accepted, "errors": errors or {},
            "enroll_to_sms_ms": {"p99": p99}}


def test_percentiles_are_nearest_rank_in_milliseconds():
    figures = percentiles([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert figures == {"n": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles([])["p99"] is None
    assert percentiles([0.25])["p50"] == 250.0


def test_the_sustainable_rate_is_the_highest_held_with_p99_under_two_seconds():
    stages = [stage(10, 10, 120), stage(20, 20, 1900), stage(30, 29.9, 4600), stage(40, 34, 900)]
    assert sustainable_rate(stages) == 20  # 40/s was fast only because it was not all taken


def test_a_stage_with_errors_is_not_held():
    assert sustainable_rate([stage(10, 10, 100, errors={"502": 1})]) == 0
    assert sustainable_rate([stage(10, 10, None)]) == 0


def burst(**changes):
    figures = {"learners": 300, "enrollments": 300, "lesson_plans": 300,
               "confirmation_sms": 300, "confirmation_sms_duplicated": 0, "dead_letters": 0,
               "errors": {}}
    return {**figures, **changes}


def test_the_burst_check_finds_anything_lost_duplicated_or_dead_lettered():
    assert check_burst(burst()) == []
    assert check_burst(burst(lesson_plans=299)) == ["burst: 299 lesson_plans for 300 learners"]
    assert check_burst(burst(confirmation_sms_duplicated=2, dead_letters=1)) == [
        "burst: 2 confirmation_sms_duplicated", "burst: 1 dead_letters"]
    assert check_burst(burst(errors={"0 TimeoutError": 3}))
    # a class that finished during the burst: each certificate issued and texted
    assert check_burst(burst(certificate_sms_ms={"learners": 26, "certificates": 26,
                                                 "missing": 0})) == []
    assert check_burst(burst(certificate_sms_ms={"learners": 26, "certificates": 25,
                                                 "missing": 1})) == [
        "burst: the class's certificates 25 of 26, 1 without an SMS"]


def test_a_bulk_case_checks_its_class_and_is_judged_on_what_waited_while_it_drained():
    bulk = {**burst(), "enrolled": 300, "already_enrolled": 0, "invalid": 0, "files": 6,
            "drained_in_s": 12.0,
            "certificate_sms_ms": {"learners": 10, "certificates": 9, "missing": 0, "p99": 900},
            "sign_in_code_sms_ms": {"p99": 1200}, "delivery_report_ms": {"p99": 40}}
    assert check_bulk("sites", bulk) == [
        "bulk sites: the class's certificates 9 of 10, 0 without an SMS"]
    judged = targets({"bulk": {"sites": bulk}})["bulk sites while draining"]
    assert judged["met"] and judged["measured"] == "1200 ms, 900 ms, 40 ms"
    slow = {**bulk, "delivery_report_ms": {"p99": 501}}
    assert not targets({"bulk": {"sites": slow}})["bulk sites while draining"]["met"]
    unmeasured = {**bulk, "sign_in_code_sms_ms": {}}
    assert not targets({"bulk": {"sites": unmeasured}})["bulk sites while draining"]["met"]


FOLDED = "\n".join([
    "Thread.run (threading.py:982);Hub.do_poll (eventlet/hubs/epolls.py:31) 60",
    "Thread.run (threading.py:982);dispatch (secantus/commands.py:10966);_update (secantus/"
    "commands.py:3455);Storage.update_matching (secantus/storage.py:5996) 30",
    "Thread.run (threading.py:982);dispatch (secantus/commands.py:10966);_find (secantus/"
    "commands.py:2934);Storage.find_matching (secantus/storage.py:5063) 10",
])


def test_the_profile_counts_waiting_apart_and_groups_the_store_by_command():
    summary = hottest(FOLDED, top=5)
    assert summary["samples"] == 100
    assert summary["busy_share"] == 40.0
    assert summary["store_commands"] == [[75.0, "_update > Storage.update_matching"],
                                         [25.0, "_find > Storage.find_matching"]]
    assert summary["self"][0] == [75.0, "Storage.update_matching (secantus/storage.py:5996)"]


CEILINGS = {"broker": {"publish_per_second": 12000},
            "store": {"insert_one_per_second": 1200, "upsert_per_second": 800},
            "framework": {"events_per_second": 6000}}


def test_a_scaling_only_run_costs_an_enrollment_from_its_one_instance_stages():
    def scaled(instances, accepted, writes):
        return {"instances": instances, "succeeded_per_s": accepted,
                "store_operations_per_enrollment": {"insert": writes / 2, "update": writes / 2}}

    results = {"ceilings": CEILINGS,
               "scaling": [scaled(1, 20, 20), scaled(2, 15, 40), scaled(4, 10, 80)]}
    derived = derive(results)
    assert derived["store_writes_per_enrollment"] == 20
    assert derived["store_bound"] == 50  # 1,000 writes/s over 20 per enrollment
    assert derived["sustainable_enrollments_per_s"] is None  # no sustained stages: not claimed
    assert [s["ratio_to_ceiling"] for s in results["scaling"]] == [0.4, 0.3, 0.2]
    assert targets({**results, "derived": derived}) == {}  # nothing measured to judge


def test_the_ladder_stops_at_the_first_rate_not_drained(monkeypatch):
    from hocvu_tools.bench import __main__ as bench
    run = []

    def fake_stage(driver, rate, seconds):
        run.append(rate)
        figures = stage(rate, rate, 500 if rate < 30 else 9000)
        if rate >= 30:
            figures["errors"] = {"not drained 150 s after": 1}
            figures["not_drained"] = "owed 12 plans"
        return figures

    monkeypatch.setattr(bench, "enrollment_stage", fake_stage)
    stages = bench.ladder(None, (40, 10, 30, 20), 30, "enrollment")
    assert run == [10, 20, 30]  # in rising order, and 40 never run behind 30's backlog
    assert sustainable_rate(stages) == 20
