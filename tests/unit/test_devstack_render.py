"""The nginx config rendered from deploy/nginx/hocvu.conf.template, and the private RabbitMQ
node's environment: both pure, checked here without starting anything."""
import re
from pathlib import Path

import pytest

from hocvu.devstack import proxy
from hocvu.devstack.rabbitmq import PrivateRabbitMQ

PORTS = {"enrollment": 9101, "lessons": 9102, "certificates": 9103, "notifications": 9104}


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


def test_state_and_logs_stay_in_the_given_folders():
    text = rendered()
    for path in re.findall(r"(?:_temp_path|pid|_log) (/\S+?)[ ;]", text):
        assert path.startswith(("/srv/run/nginx/", "/srv/log/")), path


def test_bodies_up_to_10_megabytes_and_request_ids():
    text = rendered()
    assert "client_max_body_size 10m;" in text
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
