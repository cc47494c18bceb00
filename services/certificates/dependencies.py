"""certificates' dependency providers."""
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider

from hocvu.settings import settings_of
from services.certificates.domain import CodeKeys


class VerificationCodes(DependencyProvider):
    """Signs new verification codes and checks typed ones (domain.CodeKeys); a key of
    CERTIFICATE_CODE_KEY shorter than a secret stops the start."""

    def setup(self):
        try:
            self.keys = CodeKeys(settings_of(self.container).code_key)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None

    def get_dependency(self, worker_ctx):
        return self.keys
