"""enrollment's own dependency providers (besides the kit's, and the import jobs' in bulk.py)."""
from nameko.extensions import DependencyProvider

from hocvu import auth
from hocvu.settings import settings_of
from hocvu.store import dependency
from services.enrollment import identity, migrations


class PersonalDataKeys(DependencyProvider):
    """What enrollment does with a person's identifiers instead of keeping them (Decree
    13/2023): the keyed hash of the national ID, the learner's sign-in subject (keyed hash of
    the phone number, shared with identity) and the phone sealed for notifications. The keys
    are the service's settings, which refuse to start without proper ones. `store` names the
    service's ServiceStore attribute."""

    def __init__(self, store: str = "store"):
        self.store_attr = store

    def setup(self):
        settings = settings_of(self.container)
        self.national_id_key = settings.national_id_hash_key.encode()
        self.subject_key = settings.learner_subject_key.encode()
        self.sealer = settings.sealer

    def start(self):
        migrations.forget_clear_phones(dependency(self.container, self.store_attr).store.db,
                                       self.subject_key)

    def get_dependency(self, worker_ctx):
        return self

    def national_id_hash(self, national_id: str) -> str:
        return identity.national_id_digest(national_id, self.national_id_key)

    def learner_subject(self, phone: str) -> str:
        return auth.learner_subject(phone, self.subject_key)
