"""certificates' configuration keys, typed and checked once at start
(docs/configuration.md, certificates)."""
from marshmallow.validate import Regexp

from hocvu.settings import SettingsSchema, secret, text


class CertificatesSettings(SettingsSchema):
    # the address the public reaches the platform at: the SMS and the PDF's QR code link to
    # <PUBLIC_BASE_URL>/api/certificates/verify/<code>
    public_base_url = text("PUBLIC_BASE_URL", "http://127.0.0.1:8000",
                           validate=Regexp(r"https?://", error="must be an http(s) URL"))
    # comma-separated to rotate; each key is checked by domain.CodeKeys (dependencies.py)
    code_key = secret("CERTIFICATE_CODE_KEY")
