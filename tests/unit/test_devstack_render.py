"""The nginx config rendered from deploy/nginx/hocvu.conf.template, and the private RabbitMQ
node's environment: both pure, checked here without starting anything."""
import re
from pathlib import Path

import pytest

from hocvu_tools.devstack import proxy
from hocvu_tools.devstack.rabbitmq import PrivateRabbitMQ

PORTS = {"enrollment": 9101, "lessons": 9102, "certificates": 9103, "notifications": 9104,
         "identity": 9105, "reporting": 9106}


def rendered(**kwargs) -> str:
    return proxy.render("127.0.0.1:9100", PORTS, Path("/srv/run/nginx"), Path("/srv/log"),
                        **kwargs)


def test_every_field_is_filled():
    assert not re.search(r"\{\{\s*\w+\s*\}\}", rendered())


def test_listens_on_the_edge_address_only():
    assert re.findall(r"^\s*listen (.+);", rendered(), re.M) == ["127.0.0.1:9100"]


@pytest.mark.parametrize("service", PORTS)
def test_each_prefix_goes_to_its_service_upstream_with_keepalive(service):
    text = rendered()
    upstream = re.search(r"upstream %s \{(.*?)\}" % service, text, re.S).group(1)
    assert f"server 127.0.0.1:{PORTS[service]} " in upstream
    assert re.search(r"keepalive \d+;", upstream)
    assert re.search(r"location /api/%s/\s+\{ proxy_pass http://%s; \}" % (service, service), text)
    assert "proxy_set_header X-Real-IP $remote_addr;" in text


def test_state_and_logs_stay_in_the_given_folders():
    text = rendered()
    for path in re.findall(r"(?:_temp_path|pid|_log) (/\S+?)[ ;]", text):
        assert path.startswith(("/srv/run/nginx/", "/srv/log/")), path


def test_bodies_up_to_10_megabytes_and_request_ids():
    text = rendered()
    assert "client_max_body_size 21m;" in text
    assert "proxy_set_header X-Request-ID $hocvu_request_id;" in text


def test_workers_as_root_only_when_started_by_root(monkeypatch):
    monkeypatch.setattr(proxy.os, "geteuid", lambda: 0)
    assert re.search(r"^user root;$", rendered(), re.M)
    monkeypatch.setattr(proxy.os, "geteuid", lambda: 1000)
    assert "user root;" not in rendered()


def test_an_unknown_field_is_an_error(tmp_path):
    template = tmp_path / "t.conf"
    template.write_text("listen {{listen}}; server {{nowhere}};")
    with pytest.raises(ValueError, match="nowhere"):
        rendered(template=template)


def test_private_rabbitmq_keeps_everything_in_its_folder(tmp_path):
    broker = PrivateRabbitMQ(tmp_path, port=45672, dist_port=45673)
    env = broker.environment()
    assert broker.amqp_uri == "amqp://guest:guest@127.0.0.1:45672/"
    assert env["RABBITMQ_NODENAME"] == "hocvu-45672@localhost"
    assert env["RABBITMQ_NODE_PORT"] == "45672" and env["RABBITMQ_DIST_PORT"] == "45673"
    assert env["RABBITMQ_NODE_IP_ADDRESS"] == "127.0.0.1"
    paths = {name: value for name, value in env.items()
             if name.endswith(("_FILE", "_BASE", "HOME", "_DUMP"))}
    assert "RABBITMQ_CONF_ENV_FILE" in paths  # not /etc/rabbitmq/rabbitmq-env.conf
    assert all(value.startswith(str(tmp_path)) for value in paths.values()), paths


def test_every_route_that_checks_a_password_or_a_code_has_the_sign_in_budget():
    # an admin's reset checks no password: it stays on the general budget
    text = rendered()
    pattern = re.search(r"location ~ (\S+) \{\s*limit_req zone=hocvu_sign_in ", text).group(1)
    limited = [path for path in (
        "/api/identity/staff/sign-in", "/api/identity/staff/password",
        "/api/identity/staff/lan.commune/password", "/api/identity/learners/code",
        "/api/identity/learners/token", "/api/identity/staff",
        "/api/identity/.well-known/jwks.json", "/api/identity/staff/a/b/password")
        if re.search(pattern, path)]
    assert limited == ["/api/identity/staff/sign-in", "/api/identity/staff/password",
                       "/api/identity/learners/code", "/api/identity/learners/token"]


def test_rates_and_bursts_are_fields_with_defaults():
    text = rendered()
    assert "zone=hocvu_sign_in:10m rate=10r/m;" in text
    assert "zone=hocvu_verify:10m rate=60r/m;" in text
    assert re.search(r"zone=hocvu_api:10m rate=\d+r/s;", text)
    assert "limit_req_status 429;" in text
    raised = rendered(edge=proxy.EdgeSettings(sign_in_rate="30r/m", sign_in_burst=9))
    assert "rate=30r/m;" in raised and "zone=hocvu_sign_in burst=9 nodelay;" in raised
    assert "rate=1000000r/s" in rendered(edge=proxy.EdgeSettings.unthrottled())


@pytest.mark.parametrize("changes", [{"api_rate": "fast"}, {"verify_rate": "0r/s"},
                                     {"sign_in_rate": "10r/h"}, {"api_burst": -1},
                                     {"api_rate": "5r/s; include /etc/passwd"}])
def test_a_rate_nginx_would_not_read_is_refused(changes):
    with pytest.raises(ValueError):
        proxy.EdgeSettings(**changes)


def test_cors_origins_come_from_the_environment_into_a_map():
    origins = proxy.cors_origins({"HOCVU_CORS_ORIGINS": " https://app.example.vn/, "
                                                        "http://localhost:5173 ,,"})
    assert origins == ("https://app.example.vn", "http://localhost:5173")
    text = rendered(edge=proxy.EdgeSettings(cors_origins=origins))
    block = re.search(r"map \$http_origin \$hocvu_cors_origin \{(.*?)\}", text, re.S).group(1)
    assert [line.strip() for line in block.strip().splitlines()] == [
        'default "";', '"https://app.example.vn" $http_origin;',
        '"http://localhost:5173" $http_origin;']
    assert proxy.cors_origins({}) == ()


@pytest.mark.parametrize("origin", ['https://a.vn" 1; } server { listen 80', "*",
                                    "https://a.vn/path", "ftp://a.vn", "https://a.vn\n"])
def test_an_origin_that_is_not_one_is_refused(origin):
    with pytest.raises(ValueError):
        proxy.EdgeSettings(cors_origins=(origin,))
