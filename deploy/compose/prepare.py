"""Makes the secrets and the edge configuration of the one-host compose deployment.

    .venv/bin/python deploy/compose/prepare.py --public-url https://hocvu.example.gov.vn

Writes deploy/compose/secrets/ (git ignores it): a login of its own per service on the
broker and in the store, the platform's keys, and the files the broker, the store and the
edge read. The generated values are kept in secrets/generated.json and reused on every
later run: run it again to change the public URL or the CORS origins, never to rotate a
key (NATIONAL_ID_HASH_KEY must never change, SECURITY.md).
"""
import argparse
import base64
import json
import os
import re
import secrets
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hocvu import sealing  # noqa: E402
from hocvu_tools.devstack import proxy  # noqa: E402
from hocvu_tools.devstack.rabbitmq import password_hash, service_permissions  # noqa: E402
from services.identity.keys import new_key_pem  # noqa: E402

SECRETS = Path(__file__).resolve().parent / "secrets"
SERVICES = proxy.SERVICES
PORT = 8080
VHOST = "hocvu"
BROKER_ADMIN = "hocvu-admin"
STORE_ADMIN = "hocvu-admin"


def _token() -> str:
    return secrets.token_urlsafe(32)


def generate() -> dict:
    private, public = sealing.new_key_pair()
    return {
        "broker": {service: _token() for service in SERVICES} | {BROKER_ADMIN: _token()},
        "store": {service: _token() for service in SERVICES} | {STORE_ADMIN: _token()},
        # mongod's replica-set key file: base64 characters, 6 to 1024 of them
        "store_key_file": base64.b64encode(secrets.token_bytes(756)).decode(),
        "NATIONAL_ID_HASH_KEY": secrets.token_hex(32),
        "LEARNER_SUBJECT_KEY": secrets.token_hex(32),
        "IDENTITY_HASH_KEY": secrets.token_hex(32),
        "CERTIFICATE_CODE_KEY": secrets.token_hex(32),
        "BOOTSTRAP_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "SMS_CALLBACK_SECRET": secrets.token_hex(32),
        "NOTIFICATIONS_SEALING_PRIVATE_KEY": private,
        "NOTIFICATIONS_SEALING_PUBLIC_KEY": public,
        "JWT_SIGNING_KEY_B64": base64.b64encode(new_key_pem()).decode(),
    }


def service_env(service: str, values: dict) -> dict[str, str]:
    """What only this service may know."""
    user = quote(f"hocvu-{service}", safe="")
    env = {
        "AMQP_URI": f"amqp://{user}:{quote(values['broker'][service], safe='')}"
                    f"@rabbitmq:5672/{VHOST}",
        "MONGO_URI": f"mongodb://{user}:{quote(values['store'][service], safe='')}"
                     "@mongodb:27017/?replicaSet=rs0&authSource=admin&w=majority",
    }
    keys = {
        "enrollment": ["NATIONAL_ID_HASH_KEY", "LEARNER_SUBJECT_KEY",
                       "NOTIFICATIONS_SEALING_PUBLIC_KEY"],
        "identity": ["IDENTITY_HASH_KEY", "LEARNER_SUBJECT_KEY",
                     "NOTIFICATIONS_SEALING_PUBLIC_KEY", "BOOTSTRAP_ADMIN_PASSWORD",
                     "JWT_SIGNING_KEY_B64"],
        "certificates": ["CERTIFICATE_CODE_KEY"],
        "notifications": ["NOTIFICATIONS_SEALING_PRIVATE_KEY", "SMS_CALLBACK_SECRET"],
    }.get(service, [])
    return env | {key: values[key] for key in keys}


def broker_definitions(values: dict) -> dict:
    """Loaded by RabbitMQ at boot (deploy/compose/rabbitmq.conf): the vhost, an administrator
    for operations, and each service's user with exactly its permissions."""
    users = [{"name": BROKER_ADMIN, "password_hash": password_hash(values["broker"][BROKER_ADMIN]),
              "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}]
    users += [{"name": f"hocvu-{service}",
               "password_hash": password_hash(values["broker"][service]),
               "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}
              for service in SERVICES]
    permissions = [{"user": BROKER_ADMIN, "vhost": VHOST,
                    "configure": ".*", "write": ".*", "read": ".*"}]
    permissions += [{"user": f"hocvu-{service}", "vhost": VHOST, **service_permissions(service)}
                    for service in SERVICES]
    return {"vhosts": [{"name": VHOST}], "users": users, "permissions": permissions}


def store_setup_env(values: dict) -> dict[str, str]:
    env = {"STORE_ADMIN_USER": STORE_ADMIN, "STORE_ADMIN_PASSWORD": values["store"][STORE_ADMIN],
           "HOCVU_SERVICES": ",".join(SERVICES)}
    return env | {f"STORE_PASSWORD_{service.upper()}": values["store"][service]
                  for service in SERVICES}


def edge_config(cors_origins: tuple[str, ...]) -> str:
    """deploy/nginx/hocvu.conf.template, filled in for the nginx image: each upstream is the
    service's container, logs go to the container's output."""
    placeholder_ports = {service: 18001 + n for n, service in enumerate(SERVICES)}
    text = proxy.render("8000", placeholder_ports, Path("/var/cache/nginx"), Path("/var/log/nginx"),
                        edge=proxy.EdgeSettings(cors_origins=cors_origins))
    for service, port in placeholder_ports.items():
        text = text.replace(f"server 127.0.0.1:{port} ", f"server {service}:{PORT} ")
    text = re.sub(r"^user root;$", "", text, flags=re.M)
    text = text.replace("/var/log/nginx/nginx-error.log", "stderr")
    text = text.replace("/var/log/nginx/nginx-access.log", "/dev/stdout")
    return "user nginx;\n" + text


def _write(path: Path, text: str, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    path.chmod(mode)


def _env_file(env: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in env.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--public-url", default="http://localhost:8000",
                        help="the address the public reaches the edge at")
    parser.add_argument("--cors-origins", default="",
                        help="comma-separated browser origins allowed to call the API")
    args = parser.parse_args(argv)
    SECRETS.mkdir(mode=0o700, exist_ok=True)
    stored = SECRETS / "generated.json"
    values = json.loads(stored.read_text()) if stored.exists() else generate()
    _write(stored, json.dumps(values, indent=1), 0o600)
    base = args.public_url.rstrip("/")
    public = {"PUBLIC_BASE_URL": base, "AUTH_ISSUER": f"{base}/api/identity",
              "SMS_CALLBACK_URL": f"{base}/api/notifications/delivery-reports"}
    for service in SERVICES:
        _write(SECRETS / f"{service}.env", _env_file(service_env(service, values)), 0o600)
    _write(SECRETS / "public.env", _env_file(public), 0o644)
    _write(SECRETS / "store-setup.env", _env_file(store_setup_env(values)), 0o600)
    _write(SECRETS / "store-key-file", values["store_key_file"], 0o600)
    # read by the broker's own user inside its container: hashes only, no password
    _write(SECRETS / "rabbitmq-definitions.json",
           json.dumps(broker_definitions(values), indent=1), 0o644)
    origins = tuple(o.strip() for o in args.cors_origins.split(",") if o.strip())
    _write(SECRETS / "nginx.conf", edge_config(origins), 0o644)
    print(f"wrote {SECRETS.relative_to(ROOT)}/; the first admin's password is in "
          f"{SECRETS.relative_to(ROOT)}/identity.env (BOOTSTRAP_ADMIN_PASSWORD)")


if __name__ == "__main__":
    main()
