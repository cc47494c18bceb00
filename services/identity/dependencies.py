"""identity's dependency providers: its working parts, built once at start from its
settings, and its store, which creates the bootstrap admin once prepared."""
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider

from hocvu import sealing
from hocvu.clock import utcnow
from hocvu.settings import settings_of
from hocvu.store import ServiceStore, dependency
from services.identity import domain, repository
from services.identity.keys import InvalidKey, load_keyring
from services.identity.passwords import Passwords
from services.identity.tokens import Issuer


class Runtime:
    """The issuer, password hasher and policies the routes work with. A key file or a sealing
    key that cannot be used stops the start."""

    def __init__(self, settings):
        try:
            keyring = load_keyring(settings.signing_key_files)
        except InvalidKey as exc:
            raise ConfigurationError(str(exc)) from None
        try:
            sealer = sealing.Sealer(settings.sealing_public_key)
        except ValueError as exc:
            raise ConfigurationError(f"NOTIFICATIONS_SEALING_PUBLIC_KEY: {exc}") from None
        self.issuer = Issuer(keyring, settings.issuer, settings.audience,
                             staff_lifetime=settings.staff_token_lifetime,
                             learner_lifetime=settings.learner_token_lifetime)
        self.hash_key = settings.hash_key.encode()
        self.learner_subject_key = settings.learner_subject_key.encode()
        self.passwords = Passwords(time_cost=settings.hash_time_cost,
                                   memory_kib=settings.hash_memory_kib,
                                   parallelism=settings.hash_parallelism)
        self.lockout = domain.LockoutPolicy(max_failures=settings.max_failures,
                                            window=settings.failure_window, lock=settings.lock)
        self.codes = domain.CodePolicy(
            hash_key=self.hash_key, sealer=sealer, lifetime=settings.code_lifetime,
            attempts=settings.code_attempts, per_phone=settings.per_phone,
            per_address=settings.per_address)


class IdentityRuntime(DependencyProvider):
    def setup(self):
        self.runtime = Runtime(settings_of(self.container))

    def get_dependency(self, worker_ctx) -> Runtime:
        return self.runtime


class IdentityStore(ServiceStore):
    """The service's store; once it is prepared, the bootstrap admin is created if asked.
    `runtime` names the service's IdentityRuntime attribute (its password hasher)."""

    def __init__(self, *args, runtime: str = "runtime", **kwargs):
        super().__init__(*args, **kwargs)
        self.runtime_attr = runtime

    def start(self):
        super().start()
        settings = settings_of(self.container)
        if not settings.bootstrap_username:
            return
        runtime = dependency(self.container, self.runtime_attr).runtime
        try:
            repository.bootstrap_admin(self.store, runtime.passwords, settings.bootstrap_username,
                                       settings.bootstrap_password, settings.bootstrap_province,
                                       utcnow())
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
