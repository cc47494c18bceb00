"""The benchmark harness's smoke preset, so it never rots: every workload runs, small, against
the real platform; the counts must add up and every figure must have come out. No time is
checked here (these machines are noisy): figures are for `make bench` to print."""
import json
import subprocess
import sys

import pytest

from hocvu_tools.devstack.stack import SERVICES

pytestmark = pytest.mark.bench

LATENCIES = ("http_latency_ms", "enroll_to_assigned_ms", "enroll_to_sms_ms")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    finished = subprocess.run([sys.executable, "-m", "hocvu_tools.bench", "--preset", "smoke",
                               "--out", str(out)], capture_output=True, text=True, timeout=280)
    runs = list(out.glob("*/results.json"))
    assert runs, finished.stdout[-3000:] + finished.stderr[-3000:]
    return finished, json.loads(runs[0].read_text()), runs[0].parent


def test_the_smoke_run_passes_its_own_count_checks(smoke_run):
    finished, _, _ = smoke_run
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "COUNT PROBLEM" not in finished.stderr


def test_bulk_enrollment_lost_and_duplicated_nothing(smoke_run):
    """Four sites' files at once, then one file of as many: every row enrolled once, with its
    plan and its confirmation SMS."""
    bulk = smoke_run[1]["bulk"]
    for case, files in (("sites", 4), ("single_file", 1)):
        figures = bulk[case]
        assert figures["files"] == files and figures["learners"] == 40
        assert figures["enrolled"] == figures["enrollments"] == figures["lesson_plans"] \
            == figures["confirmation_sms"] == 40
        assert figures["already_enrolled"] == figures["invalid"] == 0
        assert figures["confirmation_sms_duplicated"] == figures["dead_letters"] == 0
        assert figures["errors"] == {} and figures["drained_in_s"] > 0
        # timed while it drained: a class's certificates, sign-in codes, delivery reports
        graduated = figures["certificate_sms_ms"]
        assert graduated["certificates"] == graduated["learners"] == graduated["n"] > 0
        assert figures["sign_in_code_sms_ms"]["asked"] >= 1
        assert figures["sign_in_code_sms_ms"]["missing"] == 0
        assert figures["delivery_report_ms"]["count"] > 0


def test_the_burst_lost_and_duplicated_nothing(smoke_run):
    burst = smoke_run[1]["burst"]
    assert burst["enrollments"] == burst["lesson_plans"] == burst["confirmation_sms"] \
        == burst["learners"] == 300
    assert burst["confirmation_sms_duplicated"] == burst["dead_letters"] == 0
    assert burst["errors"] == {}
    assert burst["drained_in_s"] > 0 and burst["drained_per_s"] > 0
    assert burst["store_cpu_ms_per_enrollment"] > 0 and burst["services_cpu_ms_per_enrollment"] > 0
    # the harness says what its watching cost, and it watched without counting collections
    assert burst["harness"]["polls"] > 0 and burst["harness"]["store_queries"] >= 1


def test_every_stage_produced_latencies_for_every_accepted_request(smoke_run):
    results = smoke_run[1]
    for stage in results["enrollment"] + results["scaling"]:
        assert stage["succeeded"] == stage["requests"] > 0
        for name in LATENCIES:
            assert stage[name]["n"] == stage["succeeded"], name
        assert all(hop["n"] == stage["succeeded"] for hop in stage["hops_ms"].values())
        assert stage["store_cpu_ms_per_enrollment"] > 0
        assert stage["services_cpu_ms_per_enrollment"] > 0
        # a store of its own per service
        assert {name for name in stage["cpu_ms_per_enrollment"] if name.startswith("store-")} \
            == {f"store-{service}" for service in SERVICES}
    learning = results["learning"][0]
    assert learning["courses_finished"] == learning["learners"] > 0
    assert learning["last_lesson_to_certificate_sms_ms"]["n"] == learning["learners"]


def test_ceilings_and_derived_figures_were_measured(smoke_run):
    results = smoke_run[1]
    ceilings = results["ceilings"]
    assert ceilings["broker"]["publish_per_second"] > 0
    assert ceilings["store"]["transaction_2docs_per_second"] > 0
    assert ceilings["framework"]["events_per_second"] > 0
    assert results["derived"]["pipeline_ceiling"] > 0
    assert {row["instances"] for row in results["scaling"]} == {1, 2}
    assert set(results["memory"]) == {"idle", "end of burst"}
    assert results["machine"]["cores"] and results["machine"]["rabbitmq"].startswith("RabbitMQ")


def test_the_report_is_written_beside_the_figures(smoke_run):
    finished, _, folder = smoke_run
    report = (folder / "report.md").read_text()
    for heading in ("Ceilings", "Enrollment, sustained", "Learning, sustained",
                    "Launch burst", "Scaling out", "Resident memory", "Targets"):
        assert heading in report
    assert "Launch burst" in finished.stdout
