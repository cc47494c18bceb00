"""reporting's configuration keys, typed and checked once at start
(docs/configuration.md, reporting)."""
from hocvu.settings import SettingsSchema, number, whole


class ReportingSettings(SettingsSchema):
    # a learner with a lesson completed in this many days up to a day is active on that day
    active_days = whole("ACTIVE_DAYS", 7)
    # every commune is also recomputed this often (dependencies.Refresher)
    sweep_seconds = number("SWEEP_SECONDS", 1800, minimum=1)
    # after an event, a commune's figures are recomputed within this time: a round at most
    # this often during a burst (dependencies.Refresher)
    refresh_seconds = number("REFRESH_SECONDS", 1, minimum=0.05, maximum=60)
    # a commune's target until a province admin sets its own: the bounds that route allows
    default_target_rate = number("DEFAULT_TARGET_RATE", 0.8, minimum=0.01, maximum=1.0)
