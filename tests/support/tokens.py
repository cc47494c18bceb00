"""A token issuer for tests: its own Ed25519 key, its key set as a JSON file (or served over
HTTP), and tokens for any role, commune or learner, including broken ones.

Services under test trust it through the same settings as any other issuer (AUTH_ISSUER,
AUTH_JWKS_URL), which is also how a province points the platform at its own provider."""
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from hocvu import auth

AUDIENCE = "hocvu"
LEARNER_SUBJECT_KEY = b"test-learner-subject-key-" + b"0" * 16


class TestIssuer:
    __test__ = False  # a helper, not a test class

    def __init__(self, issuer: str = "https://issuer.test/hocvu"):
        self.issuer = issuer
        self.kid = uuid.uuid4().hex[:16]
        self.private_key = Ed25519PrivateKey.generate()
        jwk = json.loads(OKPAlgorithm.to_jwk(self.private_key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": self.kid, "alg": "EdDSA", "use": "sig"}]}
        self._served = None

    @property
    def jwks_url(self) -> str:
        if self._served is None:
            self._served = ServedKeys(self)
        return self._served.url

    def close(self) -> None:
        if self._served:
            self._served.close()

    def config(self) -> dict:
        return {"AUTH_ISSUER": self.issuer, "AUTH_JWKS_URL": self.jwks_url,
                "AUTH_AUDIENCE": AUDIENCE, "LEARNER_SUBJECT_KEY": LEARNER_SUBJECT_KEY.decode()}

    def token(self, role: str, *, province: str | None = "38", communes=(), phone=None,
              subject: str | None = None, lifetime: float = 600, issuer: str | None = None,
              audience: str = AUDIENCE, **extra) -> str:
        now = int(time.time())
        claims = {"iss": issuer or self.issuer, "aud": audience, "iat": now,
                  "exp": now + int(lifetime), "jti": uuid.uuid4().hex, "role": role, **extra}
        if role == auth.LEARNER:
            claims.update(sub=subject or auth.learner_subject(phone, LEARNER_SUBJECT_KEY),
                          phone_number=phone, phone_number_verified=True)
        else:
            claims.update(sub=subject or f"staff:{uuid.uuid4()}", province=province,
                          communes=list(communes))
        return jwt.encode(claims, self.private_key, algorithm="EdDSA",
                          headers={"kid": self.kid})

    def headers(self, role: str, **kwargs) -> dict:
        return {"Authorization": f"Bearer {self.token(role, **kwargs)}"}

    # roles as the tests use them: a commune of Thanh Hóa (38) and another
    def facilitator(self, communes=("14845",), **kwargs) -> dict:
        return self.headers(auth.FACILITATOR, communes=communes, **kwargs)

    def commune_admin(self, commune="14845", **kwargs) -> dict:
        return self.headers(auth.COMMUNE_ADMIN, communes=(commune,), **kwargs)

    def province_admin(self, province="38", **kwargs) -> dict:
        return self.headers(auth.PROVINCE_ADMIN, province=province, **kwargs)

    def learner(self, phone: str, **kwargs) -> dict:
        return self.headers(auth.LEARNER, phone=phone, province=None, **kwargs)


class ServedKeys:
    """Serves an issuer's key set over HTTP on 127.0.0.1, as a real provider does (PyJWT
    fetches key sets over http and https only)."""

    def __init__(self, issuer: TestIssuer):
        body = json.dumps(issuer.jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
