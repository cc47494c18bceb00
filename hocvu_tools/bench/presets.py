"""What a run does: the full benchmark (`make bench`) and the smoke preset (`make bench-smoke`,
part of `make test`: every workload at a size that takes about a minute, so the harness
never rots; it checks counts and that figures came out, never a time)."""
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Preset:
    name: str
    enrollment_rates: tuple[float, ...]     # per second, open loop, one stage each
    learning_rates: tuple[float, ...]       # lesson completions per second
    stage_seconds: float                    # each sustained stage
    burst_learners: int                     # the launch burst, before --scale
    burst_concurrency: int
    scaling_instances: tuple[int, ...]      # processes of lessons, notifications and reporting
    scaling_rates: tuple[float, ...]
    scaling_seconds: float
    broker_messages: int
    store_operations: int
    framework_events: int
    bulk_sites: int = 1018                  # one CSV file per site, all uploaded at once
    bulk_rows_per_site: int = 51
    workloads: tuple[str, ...] = field(default=(
        "ceilings", "enrollment", "learning", "burst", "bulk", "scaling"))

    def scaled(self, scale: float) -> "Preset":
        return replace(self, burst_learners=max(1, round(self.burst_learners * scale)),
                       bulk_sites=max(1, round(self.bulk_sites * scale)))


FULL = Preset(
    name="full",
    enrollment_rates=(10, 20, 25, 30, 35, 40), learning_rates=(10, 20, 40), stage_seconds=60,
    burst_learners=52_000, burst_concurrency=32,
    scaling_instances=(1, 2, 4), scaling_rates=(20, 30, 40), scaling_seconds=30,
    broker_messages=50_000, store_operations=4_000, framework_events=10_000)

SMOKE = Preset(
    name="smoke",
    enrollment_rates=(5, 10), learning_rates=(10,), stage_seconds=5,
    burst_learners=300, burst_concurrency=16,
    scaling_instances=(1, 2), scaling_rates=(10,), scaling_seconds=5,
    broker_messages=2_000, store_operations=300, framework_events=500,
    bulk_sites=4, bulk_rows_per_site=10)

PRESETS = {preset.name: preset for preset in (FULL, SMOKE)}
