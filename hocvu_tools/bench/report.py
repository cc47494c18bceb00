"""The run's figures as markdown tables: printed at the end of a run and saved beside the
raw JSON. Latencies are milliseconds; "p99 x of y" reads "x ms at the 99th percentile"."""


def _ms(p: dict | None, key: str = "p99") -> str:
    if not p or p.get(key) is None:
        return "-"
    return f"{p[key]:,.0f}"


def _pcts(p: dict | None) -> str:
    return " / ".join(_ms(p, k) for k in ("p50", "p95", "p99"))


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _errors(stage: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in stage["errors"].items()) or "0"


def markdown(results: dict) -> str:
    out = [f"# hocvu benchmark, preset {results['preset']}, {results['started_at']}", ""]
    machine = results["machine"]
    out += [f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
            f"{machine['os']}, Python {machine['python']}, {machine['rabbitmq']}, "
            f"{machine['store']}. Load average at start: {machine['load_average_at_start']}.",
            ""]
    if results.get("service_env"):
        out += ["Settings given to every service: " + ", ".join(
            f"`{name}={value}`" for name, value in sorted(results["service_env"].items())) + ".",
            ""]
    out += _ceilings(results)
    out += _enrollment(results.get("enrollment", []))
    out += _learning(results.get("learning", []))
    out += _burst(results.get("burst"))
    out += _bulk(results.get("bulk"))
    out += _scaling(results.get("scaling", []))
    out += _memory(results.get("memory", {}))
    out += _targets(results.get("targets", {}))
    out += _profile(results.get("profile", {}))
    return "\n".join(out)


def _ceilings(results: dict) -> list[str]:
    c, d = results.get("ceilings"), results.get("derived", {})
    if not c:
        return []
    out = ["## Ceilings (each part alone, same machine, same run)", ""]
    out += _table(["part", "measured", "per enrollment", "enrollments/s it allows"], [
        ["broker (pika, persistent, confirms in batches of "
         f"{c['broker']['confirm_batch']})",
         f"publish {c['broker']['publish_per_second']:,.0f}/s, "
         f"consume {c['broker']['consume_per_second']:,.0f}/s",
         f"{d.get('broker_messages_per_enrollment', '-')} messages",
         f"{d.get('broker_bound', '-')}"],
        [f"store (pymongo, {c['store']['concurrency']} threads, {c['store']['write_concern']})",
         f"insert_one {c['store']['insert_one_per_second']:,.0f}/s, upsert "
         f"{c['store']['upsert_per_second']:,.0f}/s, 2-document transaction "
         f"{c['store']['transaction_2docs_per_second']:,.0f}/s",
         f"{d.get('store_writes_per_enrollment', '-')} writes",
         f"{d.get('store_bound', '-')}"],
        [f"framework (nameko, no-op handler, {c['framework']['max_workers']} workers)",
         f"{c['framework']['events_per_second']:,.0f} events/s",
         f"{d.get('consumed_events_per_enrollment', '-')} events consumed",
         f"{d.get('framework_bound', '-')}"],
    ])
    out += [f"Pipeline ceiling: **{d.get('pipeline_ceiling', '-')} enrollments/s**, "
            f"set by the {d.get('bound_by', '-')}.", ""]
    if d.get("completion_store_bound"):
        out += [f"Lesson completions: {d['store_writes_per_completion']} store writes each, "
                f"so the store allows {d['completion_store_bound']} completions/s.", ""]
    return out


def _enrollment(stages: list[dict]) -> list[str]:
    if not stages:
        return []
    out = ["## Enrollment, sustained (open loop, through the edge)", ""]
    out += _table(
        ["offered/s", "accepted/s", "errors", "HTTP p50/p95/p99",
         "enroll→lessons assigned p50/p95/p99", "enroll→SMS received p50/p95/p99",
         "vs ceiling"],
        [[s["offered_per_s"], s["succeeded_per_s"], _errors(s), _pcts(s["http_latency_ms"]),
          _pcts(s["enroll_to_assigned_ms"]), _pcts(s["enroll_to_sms_ms"]),
          s.get("ratio_to_ceiling", "-")] for s in stages])
    out += ["Where the time goes (p50 / p99 of each hop):", ""]
    hops = list(stages[0]["hops_ms"])
    out += _table(["offered/s", *hops], [
        [s["offered_per_s"], *(f"{_ms(s['hops_ms'][h], 'p50')} / {_ms(s['hops_ms'][h])}"
                               for h in hops)] for s in stages])
    out += _per_unit(stages, "cpu_ms_per_enrollment", "-",
                     "CPU milliseconds per enrollment, by process:")
    out += _per_unit(stages, "store_operations_per_enrollment", 0,
                     "Store operations per enrollment (the store's own counters):")
    return out


def _per_unit(stages: list[dict], field: str, absent, title: str) -> list[str]:
    """A table of what each stage cost per unit of work: one column per process or kind."""
    columns = sorted({column for s in stages for column in s[field]})
    return [title, "", *_table(["offered/s", *columns], [
        [s["offered_per_s"], *(s[field].get(column, absent) for column in columns)]
        for s in stages])]


def _learning(stages: list[dict]) -> list[str]:
    if not stages:
        return []
    out = ["## Learning, sustained (lesson completions, open loop)", ""]
    out += _table(
        ["offered/s", "completed/s", "errors", "learners", "HTTP p50/p95/p99",
         "last lesson→certificate p50/p95/p99", "last lesson→certificate SMS p50/p95/p99",
         "vs store-bound ceiling"],
        [[s["offered_per_s"], s["succeeded_per_s"], _errors(s), s["learners"],
          _pcts(s["http_latency_ms"]), _pcts(s["last_lesson_to_certificate_ms"]),
          _pcts(s["last_lesson_to_certificate_sms_ms"]), s.get("ratio_to_ceiling", "-")]
         for s in stages])
    stages = [s for s in stages if "cpu_ms_per_completion" in s]
    if not stages:
        return out
    out += _per_unit(stages, "cpu_ms_per_completion", "-",
                     "CPU milliseconds per lesson completion, by process (certificates and "
                     "their SMS included):")
    out += _per_unit(stages, "store_operations_per_completion", 0,
                     "Store operations per lesson completion:")
    return out


def _bulk(bulk: dict | None) -> list[str]:
    if not bulk:
        return []
    out = ["## Bulk enrollment from CSV files (until every learner has a plan and an SMS)", ""]
    rows = []
    for case, b in bulk.items():
        rows.append([case.replace("_", " "), f"{b['files']:,} × {b['rows_per_file']:,}",
                     b["concurrency"], _errors(b), b["uploaded_in_s"], b["drained_in_s"],
                     b["learners_per_s"], f"{b['enrolled']:,}", f"{b['lesson_plans']:,}",
                     f"{b['confirmation_sms']:,}", b["confirmation_sms_duplicated"],
                     b["dead_letters"], _pcts(b["http_latency_ms"])])
    out += _table(["case", "files × rows", "clients", "errors", "uploaded s", "drained s",
                   "learners/s", "enrolled", "plans", "SMS", "SMS duplicated",
                   "dead letters", "upload p50 / p95 / p99 ms"], rows)
    out += ["", "While each case drained:", ""]
    return out + _table(
        ["case", "sign-in code asked → its SMS at the gateway p50/p99/max",
         "a class's certificate issued → its SMS p50/p99/max",
         "delivery reports answered p50/p99/max"],
        [[case.replace("_", " "), _probe(b.get("sign_in_code_sms_ms")),
          _class(b.get("certificate_sms_ms")), _reports(b.get("delivery_report_ms"))]
         for case, b in bulk.items()])


def _reports(figures: dict | None) -> str:
    return " / ".join(str((figures or {}).get(k, "-")) for k in ("p50", "p99", "max")) + " ms"


def _probe(figures: dict | None) -> str:
    if not figures:
        return "-"
    return (" / ".join(str(figures.get(k, "-")) for k in ("p50", "p99", "max")) +
            f" ms ({figures.get('asked', 0)} asked, {figures.get('missing', 0)} without an SMS,"
            f" {figures.get('refused', 0)} refused)")


def _class(figures: dict | None) -> str:
    if not figures:
        return "-"
    return (" / ".join(str(figures.get(k, "-")) for k in ("p50", "p99", "max")) +
            f" ms ({figures.get('certificates', 0)} certificates of {figures.get('learners', 0)}"
            f" learners, {figures.get('missing', 0)} without an SMS,"
            f" {figures.get('refused', 0)} lessons refused)")


def _burst(b: dict | None) -> list[str]:
    if not b:
        return []
    out = [f"## Launch burst: {b['learners']:,} learners, {b['concurrency']} concurrent clients",
           ""]
    out += _table(["figure", "value"], [
        ["all submitted in", f"{b['submitted_in_s']:,} s ({b['succeeded_per_s']}/s accepted, "
                             f"{b.get('ratio_to_ceiling', '-')} of the pipeline's ceiling)"],
        ["drained (every plan and confirmation SMS) in",
         f"{b['drained_in_s']:,} s ({b.get('drained_per_s', '-')} learners/s, "
         f"{b.get('drained_ratio_to_ceiling', '-')} of the ceiling)"],
        ["HTTP latency p50/p95/p99", _pcts(b["http_latency_ms"])],
        ["enroll→SMS received p50/p95/p99", _pcts(b["enroll_to_sms_ms"])],
        ["sign-in code asked → its SMS at the gateway p50/p99/max, during the drain",
         _probe(b.get("sign_in_code_sms_ms"))],
        ["a class's certificate issued → its SMS at the gateway p50/p99/max, during the drain",
         _class(b.get("certificate_sms_ms"))],
        ["delivery reports answered p50/p99/max (the gateway's wait)",
         _reports(b.get("delivery_report_ms"))],
        ["enrollments / lesson plans / confirmation SMS",
         f"{b['enrollments']:,} / {b['lesson_plans']:,} / {b['confirmation_sms']:,}"],
        ["duplicated SMS / dead letters / request errors",
         f"{b['confirmation_sms_duplicated']} / {b['dead_letters']} / {_errors(b)}"],
        ["CPU per enrollment: the stores / the services together",
         f"{b.get('store_cpu_ms_per_enrollment', '-')} ms / "
         f"{b.get('services_cpu_ms_per_enrollment', '-')} ms"],
        ["what watching cost: polls / store queries / documents read",
         " / ".join(str((b.get("harness") or {}).get(k, 0))
                    for k in ("polls", "store_queries", "documents_read"))],
    ])
    if b.get("cpu_ms_per_enrollment"):
        out += ["", "CPU ms per enrollment, each process: " + ", ".join(
            f"{name} {ms}" for name, ms in b["cpu_ms_per_enrollment"].items())]
    by_store = b.get("store_operations_by_store_per_enrollment")
    if by_store:
        kinds = sorted({kind for counts in by_store.values() for kind in counts})
        out += ["", "Store commands per enrollment, each store (its own counters; the store "
                    "budget test's figures, idle work included here):", ""]
        out += _table(["store", *kinds], [[service, *(counts.get(kind, 0) for kind in kinds)]
                                          for service, counts in by_store.items()])
    return out


def _scaling(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    out = ["## Scaling out: instances of lessons, notifications and reporting", ""]
    out += _table(["instances", "offered/s", "accepted/s", "errors",
                   "enroll→assigned p50/p99", "enroll→SMS p50/p99", "store CPU ms/enrollment",
                   "vs ceiling"],
                  [[r["instances"], r["offered_per_s"], r["succeeded_per_s"], _errors(r),
                    f"{_ms(r['enroll_to_assigned_ms'], 'p50')} / {_ms(r['enroll_to_assigned_ms'])}",
                    f"{_ms(r['enroll_to_sms_ms'], 'p50')} / {_ms(r['enroll_to_sms_ms'])}",
                    r.get("store_cpu_ms_per_enrollment",
                          r["cpu_ms_per_enrollment"].get("store", "-")),
                    r.get("ratio_to_ceiling", "-")]
                   for r in rows])
    return out


def _memory(memory: dict) -> list[str]:
    if not memory:
        return []
    names = sorted(memory.get("idle", {}))
    out = ["## Resident memory (MiB)", ""]
    out += _table(["when", *names], [
        [when, *(f"{memory[when].get(n, float('nan')):.0f}" for n in names)]
        for when in memory])
    return out


def _targets(targets: dict) -> list[str]:
    if not targets:
        return []
    out = ["## Targets", ""]
    out += _table(["target", "measured", "met"],
                  [[t["target"], t["measured"], "yes" if t["met"] else "**no**"]
                   for t in targets.values()])
    return out


def _profile(profile: dict) -> list[str]:
    if not profile:
        return []
    out = ["## Profile of the burst (py-spy; shares of each process's busy samples)", ""]
    for name, summary in profile.items():
        out += [f"**{name}**: busy in {summary['busy_share']}% of {summary['samples']} "
                "samples. Self time: " + "; ".join(
                    f"{share}% {frame}" for share, frame in summary["self"][:6]), ""]
        if summary.get("store_commands"):
            out += ["Store time by command: " + "; ".join(
                f"{share}% {command}" for share, command in summary["store_commands"][:8]), ""]
    return out
