"""SMS providers behind one interface: send(SmsRequest) -> SendResult.

SMS_PROVIDER chooses the adapter and SMS_FALLBACK_PROVIDER, if set, the one to fail over
to; each sits behind its account's token bucket (SMS_<NAME>_RATE_PER_SECOND, _BURST).
Adapters: `simulator` (the project's gateway simulator), `esms` (eSMS.vn), `speedsms`
(SpeedSMS.vn); docs/sms-gateway.md describes each. An adapter also parses its provider's
delivery reports (`parse_report`) and, where the provider allows, asks for a message's
status (`query_status`, when `can_query_status`).
"""
from services.notifications.providers.base import (  # noqa: F401  (the package's interface)
    ACCEPTED, DELIVERED, PENDING, REJECTED, RETRY, UNDELIVERED, BadReport, Report, SendResult,
    SmsRequest, retry_after_seconds)
from services.notifications.providers.esms import EsmsProvider
from services.notifications.providers.failover import Failover
from services.notifications.providers.simulator import SimulatorProvider
from services.notifications.providers.speedsms import SpeedSmsProvider
from services.notifications.providers.throttle import Throttled, TokenBucket

PROVIDERS = {cls.name: cls for cls in (SimulatorProvider, EsmsProvider, SpeedSmsProvider)}


def adapter(name: str, settings) -> Throttled:
    """Provider `name` behind its account's token bucket; `settings`: the service's
    (settings.NotificationsSettings), where SMS_<NAME>_RATE_PER_SECOND is `<name>_rate`."""
    rate = getattr(settings, f"{name}_rate")
    burst = getattr(settings, f"{name}_burst") or rate
    return Throttled(PROVIDERS[name](settings), TokenBucket(rate, burst))


def provider_from_settings(settings):
    primary = adapter(settings.provider, settings)
    if not settings.fallback_provider:
        return primary
    return Failover(primary, adapter(settings.fallback_provider, settings),
                    threshold=settings.failover_after, cooldown=settings.failover_cooldown)


def by_name(provider, name: str):
    """The adapter called `name` inside what provider_from_settings built, or None."""
    for candidate in getattr(provider, "providers", (provider,)):
        if candidate.name == name:
            return candidate
    return None
