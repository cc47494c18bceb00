"""What enrollment does with a person's identifiers instead of keeping them (Decree 13/2023):
the keys of the national ID's hash and of the learner's sign-in subject, and the public key
that seals a phone number for notifications. Read once from the configuration; the service
refuses to start without them."""
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider

from hocvu import auth
from hocvu.sealing import Sealer
from hocvu.store import dependency
from services.enrollment import identity, migrations


def _key_setting(config: dict, name: str, minimum: int = 32) -> bytes:
    key = str(config.get(name) or "")
    if len(key) < minimum:
        raise ConfigurationError(f"{name} must be set to a secret of at least {minimum} characters")
    return key.encode()


class PersonalDataKeys(DependencyProvider):
    """What enrollment does with a person's identifiers instead of keeping them: the keyed
    hash of the national ID, the learner's sign-in subject (keyed hash of the phone number,
    shared with identity) and the phone sealed for notifications. Refuses to start without
    proper keys. `store` names the service's ServiceStore attribute."""

    def __init__(self, store: str = "store"):
        self.store_attr = store

    def setup(self):
        config = self.container.config
        self.national_id_key = _key_setting(config, "NATIONAL_ID_HASH_KEY")
        self.subject_key = _key_setting(config, "LEARNER_SUBJECT_KEY")
        try:
            self.sealer = Sealer(str(config.get("NOTIFICATIONS_SEALING_PUBLIC_KEY") or ""))
        except ValueError as exc:
            raise ConfigurationError(f"NOTIFICATIONS_SEALING_PUBLIC_KEY: {exc}") from None

    def start(self):
        migrations.forget_clear_phones(dependency(self.container, self.store_attr).store.db,
                                       self.subject_key)

    def get_dependency(self, worker_ctx):
        return self

    def national_id_hash(self, national_id: str) -> str:
        return identity.national_id_digest(national_id, self.national_id_key)

    def learner_subject(self, phone: str) -> str:
        return auth.learner_subject(phone, self.subject_key)
