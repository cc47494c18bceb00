"""Writes the Kubernetes manifests of deploy/k8s/base/ from the platform's own facts.

    .venv/bin/python deploy/k8s/generate.py

Kept as a script, not a Helm chart: neither helm nor kustomize can run in our CI, and what
varies between services (their queues, secrets and settings) lives in the code already
(hocvu/contracts.py, services/*/config.yaml). The output is plain YAML, committed, and
`kubectl apply -k deploy/k8s/base` applies it; a province changes host names, image, sizes
and replicas in a kustomize overlay of its own on top. tests/unit/test_deploy_manifests.py
fails when the committed files differ from what this script writes, so run it again after
changing the contracts or this file.
"""
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hocvu import topology  # noqa: E402
from hocvu_tools.devstack.rabbitmq import service_permissions  # noqa: E402

BASE = Path(__file__).resolve().parent / "base"
NAMESPACE = "hocvu"
IMAGE = "registry.example.gov.vn/hocvu:0.1.0"
PUBLIC_HOST = "hocvu.example.gov.vn"
# the browser origins allowed to call the API (the edge's HOCVU_CORS_ORIGINS)
CORS_ORIGINS = "https://app.example.gov.vn"
VHOST = "hocvu"
SERVICES = ("enrollment", "lessons", "certificates", "notifications", "identity", "reporting")
PORT = 8080
UID = 10001
# nameko lets running workers finish on SIGTERM; systemd gives them TimeoutStopSec=30
# (deploy/systemd/hocvu@.service), and so does Kubernetes, after the preStop pause
DRAIN_SECONDS = 30
# between the pod leaving the Service's endpoints and SIGTERM: the ingress controller and
# kube-proxy take a few seconds to stop sending it requests
PRE_STOP_SECONDS = 5
QUIET_EVENTLET_NOTICE = "ignore::Warning:nameko.cli.commands"
# messages waiting per instance before KEDA adds one
QUEUE_DEPTH_PER_INSTANCE = 50
CPU_TARGET_PERCENT = 70
# the versions the platform is tested with (RabbitMQ >= 3.10, MongoDB >= 7: deploy/README.md)
RABBITMQ_IMAGE = "rabbitmq:3.13.7-management"
MONGODB_VERSION = "7.0.14"
MONGODB = "hocvu-mongodb"
RABBITMQ = "hocvu-rabbitmq"

# (cpu request, memory request, cpu limit, memory limit); identity hashes passwords with
# argon2id at 64 MiB each, up to MAX_WORKERS at once
RESOURCES = {
    "enrollment": ("250m", "256Mi", "1", "512Mi"),
    "lessons": ("250m", "256Mi", "1", "512Mi"),
    "certificates": ("250m", "256Mi", "1", "512Mi"),
    "notifications": ("250m", "256Mi", "1", "512Mi"),
    "identity": ("500m", "384Mi", "2", "1Gi"),
    "reporting": ("250m", "256Mi", "1", "512Mi"),
}
MAX_REPLICAS = {"enrollment": 8, "lessons": 8, "certificates": 6, "notifications": 10,
                "identity": 6, "reporting": 4}
MIN_REPLICAS = 2
# each service's routes for operations only (hocvu.auth.OPERATIONS): never from outside
OPERATIONS_ROUTES = ("health", "metrics")


def _settings(service: str) -> dict:
    """The service's non-secret settings (docs/configuration.md)."""
    common = {
        "HTTP_ADDRESS": f"0.0.0.0:{PORT}",
        "MONGO_DATABASE": f"hocvu_{service}",
        "QUEUE_TYPE": "quorum",
        "MAX_WORKERS": "10",
        "LOG_LEVEL": "INFO",
        "PYTHONWARNINGS": QUIET_EVENTLET_NOTICE,
        "AUTH_ISSUER": f"https://{PUBLIC_HOST}/api/identity",
        "AUTH_AUDIENCE": "hocvu",
        # inside the cluster, not through the ingress
        "AUTH_JWKS_URL": f"http://identity.{NAMESPACE}.svc/api/identity/.well-known/jwks.json",
    }
    extra = {
        "certificates": {"PUBLIC_BASE_URL": f"https://{PUBLIC_HOST}"},
        "notifications": {
            "SMS_PROVIDER": "esms",
            "SMS_BRANDNAME": "HOCVUSO",
            "SMS_CALLBACK_URL": f"https://{PUBLIC_HOST}/api/notifications/delivery-reports",
        },
        "identity": {
            "JWT_SIGNING_KEYS": "/etc/hocvu/jwt/signing-1.pem",
            "BOOTSTRAP_ADMIN_USERNAME": "",
            "BOOTSTRAP_ADMIN_PROVINCE": "",
        },
    }
    return {**common, **extra.get(service, {})}


def _secret_env(service: str) -> list[tuple[str, str, str, bool]]:
    """(variable, Secret, key, optional) of the service's secrets. Each service's own Secret
    `hocvu-<service>` holds what only it knows; `hocvu-shared` what two services share."""
    own = f"hocvu-{service}"
    env = [("AMQP_URI", own, "amqp-uri", False),
           # written by the MongoDB operator for the service's own database user
           ("MONGO_URI", f"{MONGODB}-{service}", "connectionString.standard", False)]
    env += {
        "enrollment": [
            ("NATIONAL_ID_HASH_KEY", own, "national-id-hash-key", False),
            ("LEARNER_SUBJECT_KEY", "hocvu-shared", "learner-subject-key", False),
            ("NOTIFICATIONS_SEALING_PUBLIC_KEY", "hocvu-shared",
             "notifications-sealing-public-key", False),
        ],
        "identity": [
            ("IDENTITY_HASH_KEY", own, "identity-hash-key", False),
            ("LEARNER_SUBJECT_KEY", "hocvu-shared", "learner-subject-key", False),
            ("NOTIFICATIONS_SEALING_PUBLIC_KEY", "hocvu-shared",
             "notifications-sealing-public-key", False),
            ("BOOTSTRAP_ADMIN_PASSWORD", own, "bootstrap-admin-password", True),
        ],
        "certificates": [
            ("CERTIFICATE_CODE_KEY", own, "certificate-code-key", False),
        ],
        "notifications": [
            ("NOTIFICATIONS_SEALING_PRIVATE_KEY", own, "sealing-private-key", False),
            ("SMS_CALLBACK_SECRET", own, "sms-callback-secret", False),
            ("SMS_ESMS_API_KEY", own, "esms-api-key", True),
            ("SMS_ESMS_SECRET_KEY", own, "esms-secret-key", True),
            ("SMS_ESMS_CALLBACK_TOKEN", own, "esms-callback-token", True),
            ("SMS_SPEEDSMS_ACCESS_TOKEN", own, "speedsms-access-token", True),
            ("SMS_SPEEDSMS_WEBHOOK_TOKEN", own, "speedsms-webhook-token", True),
        ],
    }.get(service, [])
    return env


def consumed_queues(service: str) -> list[str]:
    return [name for name in topology.all_subscriber_queue_names()
            if name.rsplit("--", 1)[1].split(".")[0] == service]


def _labels(service: str) -> dict:
    return {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "hocvu"}


def _meta(name: str, service: str | None = None) -> dict:
    meta = {"name": name, "namespace": NAMESPACE}
    if service:
        meta["labels"] = _labels(service)
    return meta


def _probe(service: str, check: str, period: int, timeout: int, failures: int) -> dict:
    return {"httpGet": {"path": f"/api/{service}/health/{check}", "port": "http"},
            "periodSeconds": period, "timeoutSeconds": timeout, "failureThreshold": failures}


def config_map(service: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(f"hocvu-{service}", service),
            "data": _settings(service)}


def deployment(service: str) -> dict:
    cpu_request, memory_request, cpu_limit, memory_limit = RESOURCES[service]
    env = [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key,
                                                          **({"optional": True} if optional else {})}}}
           for name, secret, key, optional in _secret_env(service)]
    volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if service == "identity":
        volumes.append({"name": "jwt-signing-keys", "secret": {
            "secretName": "hocvu-identity-jwt", "defaultMode": 0o440}})
        mounts.append({"name": "jwt-signing-keys", "mountPath": "/etc/hocvu/jwt",
                       "readOnly": True})
    container = {
        "name": service,
        "image": IMAGE,
        "command": ["python", "-m", "nameko", "run", "--config",
                    f"services/{service}/config.yaml", f"services.{service}.service"],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": f"hocvu-{service}"}}],
        "env": env,
        "resources": {"requests": {"cpu": cpu_request, "memory": memory_request},
                      "limits": {"cpu": cpu_limit, "memory": memory_limit}},
        # the first start creates indexes (and lessons seeds its catalog): give it a minute
        "startupProbe": _probe(service, "live", period=2, timeout=2, failures=30),
        # no I/O: a failure means the process itself is stuck
        "livenessProbe": _probe(service, "live", period=10, timeout=2, failures=3),
        # broker and store; it answers 503 within about 2 s when either is away
        "readinessProbe": _probe(service, "ready", period=5, timeout=3, failures=2),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(service, service),
        "spec": {
            "replicas": MIN_REPLICAS,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _labels(service)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels(service)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": PRE_STOP_SECONDS + DRAIN_SECONDS,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID,
                                        "runAsGroup": UID, "fsGroup": UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": _labels(service)}}],
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def service_object(service: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(service, service),
            "spec": {"type": "ClusterIP", "selector": _labels(service),
                     "ports": [{"name": "http", "port": 80, "targetPort": "http",
                                "protocol": "TCP"}]}}


def disruption_budget(service: str) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(service, service),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(service)}}}


def _scale_down_slowly() -> dict:
    return {"scaleDown": {"stabilizationWindowSeconds": 300,
                          "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}


def cpu_autoscaler(service: str) -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(service, service),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": service},
                     "minReplicas": MIN_REPLICAS, "maxReplicas": MAX_REPLICAS[service],
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": CPU_TARGET_PERCENT}}}],
                     "behavior": _scale_down_slowly()}}


def trigger_authentication(service: str) -> dict:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": _meta(f"{service}-rabbitmq", service),
            "spec": {"secretTargetRef": [{"parameter": "host", "name": f"hocvu-{service}",
                                          "key": "amqp-uri"}]}}


def scaled_object(service: str) -> dict:
    """KEDA scales on CPU and on each queue's depth, through the one HPA it manages: a
    separate HorizontalPodAutoscaler on the same Deployment would fight it (KEDA's admission
    webhook refuses that)."""
    triggers = [{"type": "cpu", "name": "cpu", "metricType": "Utilization",
                 "metadata": {"value": str(CPU_TARGET_PERCENT)}}]
    triggers += [{"type": "rabbitmq", "name": queue.rsplit("--", 1)[1].replace(".", "-"),
                  "metadata": {"protocol": "amqp", "mode": "QueueLength",
                               "queueName": queue, "value": str(QUEUE_DEPTH_PER_INSTANCE)},
                  "authenticationRef": {"name": f"{service}-rabbitmq"}}
                 for queue in consumed_queues(service)]
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": _meta(service, service),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": service},
                     "minReplicaCount": MIN_REPLICAS, "maxReplicaCount": MAX_REPLICAS[service],
                     "pollingInterval": 15, "cooldownPeriod": 300,
                     "advanced": {"horizontalPodAutoscalerConfig": {
                         "name": service, "behavior": _scale_down_slowly()}},
                     "triggers": triggers}}


def service_documents(service: str) -> list[dict]:
    documents = [config_map(service), deployment(service), service_object(service),
                 disruption_budget(service)]
    if consumed_queues(service):
        documents += [trigger_authentication(service), scaled_object(service)]
    else:
        documents.append(cpu_autoscaler(service))
    return documents


def _ingress(name: str, paths: list[tuple[str, str, str]], annotations: dict) -> dict:
    """ingress-nginx: its annotations apply to the paths of this Ingress only."""
    cors = {"nginx.ingress.kubernetes.io/enable-cors": "true",
            "nginx.ingress.kubernetes.io/cors-allow-origin": CORS_ORIGINS,
            "nginx.ingress.kubernetes.io/cors-allow-methods":
                "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
            "nginx.ingress.kubernetes.io/cors-allow-headers":
                "Authorization, Content-Type, X-Correlation-ID, X-Request-ID",
            "nginx.ingress.kubernetes.io/cors-expose-headers":
                "X-Request-ID, X-Correlation-ID, Retry-After, Location",
            "nginx.ingress.kubernetes.io/cors-max-age": "600",
            # bulk CSV imports of learner lists are the largest bodies we expect (BULK_MAX_BYTES)
            "nginx.ingress.kubernetes.io/proxy-body-size": "21m"}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {**_meta(name), "annotations": {**cors, **annotations}},
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": [PUBLIC_HOST], "secretName": "hocvu-tls"}],
                     "rules": [{"host": PUBLIC_HOST, "http": {"paths": [
                         {"path": path, "pathType": path_type,
                          "backend": {"service": {"name": service, "port": {"name": "http"}}}}
                         for path, path_type, service in paths]}}]}}


def _per_address(per_second: int | None = None, per_minute: int | None = None,
                 burst: int = 0) -> dict:
    """ingress-nginx's rate limit per client address; its burst is rate x multiplier."""
    rate = per_second or per_minute
    key = "limit-rps" if per_second else "limit-rpm"
    return {f"nginx.ingress.kubernetes.io/{key}": str(rate),
            "nginx.ingress.kubernetes.io/limit-burst-multiplier": str(max(1, burst // rate))}


def ingresses() -> list[dict]:
    """The edge's routing and limits (deploy/nginx): /api/<service>/ to that service, 50 a
    second per address with a burst of 200; sign-in, password change and code requests 10 a
    minute;
    certificate verification 60 a minute; health and metrics never from outside."""
    return [
        _ingress("hocvu", [(f"/api/{service}/", "Prefix", service) for service in SERVICES],
                 _per_address(per_second=50, burst=200)),
        _ingress("hocvu-sign-in", [(f"/api/identity/{route}", "Exact", "identity") for route in
                                   ("staff/sign-in", "staff/password", "learners/code",
                                    "learners/token")],
                 _per_address(per_minute=10, burst=10)),
        _ingress("hocvu-verify", [("/api/certificates/verify/", "Prefix", "certificates")],
                 _per_address(per_minute=60, burst=60)),
        # the longer prefix wins; every address is refused (403): operations probe and
        # scrape the pods
        _ingress("hocvu-operations", [(f"/api/{service}/{route}", "Prefix", service)
                                      for service in SERVICES for route in OPERATIONS_ROUTES],
                 {"nginx.ingress.kubernetes.io/denylist-source-range": "0.0.0.0/0,::/0"}),
    ]


def rabbitmq_cluster() -> dict:
    return {"apiVersion": "rabbitmq.com/v1beta1", "kind": "RabbitmqCluster",
            "metadata": _meta(RABBITMQ),
            "spec": {"replicas": 3, "image": RABBITMQ_IMAGE,
                     "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                   "limits": {"cpu": "2", "memory": "2Gi"}},
                     "persistence": {"storage": "20Gi"},
                     "rabbitmq": {"additionalConfig": (
                         # the services declare quorum queues themselves (QUEUE_TYPE=quorum);
                         # this covers any queue declared without a type
                         "default_queue_type = quorum\n")},
                     "affinity": {"podAntiAffinity": {
                         "requiredDuringSchedulingIgnoredDuringExecution": [{
                             "topologyKey": "kubernetes.io/hostname",
                             "labelSelector": {"matchLabels": {
                                 "app.kubernetes.io/name": RABBITMQ}}}]}}}}


def _cluster_reference() -> dict:
    return {"name": RABBITMQ}


def rabbitmq_vhost() -> dict:
    return {"apiVersion": "rabbitmq.com/v1beta1", "kind": "Vhost", "metadata": _meta(VHOST),
            "spec": {"name": VHOST, "defaultQueueType": "quorum",
                     "rabbitmqClusterReference": _cluster_reference()}}


def rabbitmq_user(service: str) -> dict:
    """The service's own broker login (RabbitMQ messaging topology operator): its Secret
    `hocvu-<service>-rabbitmq` holds `username` (hocvu-<service>) and `password`."""
    return {"apiVersion": "rabbitmq.com/v1beta1", "kind": "User",
            "metadata": _meta(f"hocvu-{service}", service),
            "spec": {"rabbitmqClusterReference": _cluster_reference(),
                     "importCredentialsSecret": {"name": f"hocvu-{service}-rabbitmq"}}}


def rabbitmq_permission(service: str) -> dict:
    """Exactly what the service needs on the vhost, from the event contracts."""
    return {"apiVersion": "rabbitmq.com/v1beta1", "kind": "Permission",
            "metadata": _meta(f"hocvu-{service}", service),
            "spec": {"vhost": VHOST, "userReference": {"name": f"hocvu-{service}"},
                     "permissions": service_permissions(service),
                     "rabbitmqClusterReference": _cluster_reference()}}


def mongodb_replica_set() -> dict:
    users = [{"name": f"hocvu-{service}", "db": "admin",
              "passwordSecretRef": {"name": f"hocvu-{service}", "key": "mongodb-password"},
              "roles": [{"name": "readWrite", "db": f"hocvu_{service}"}],
              "scramCredentialsSecretName": f"hocvu-{service}",
              "connectionStringSecretName": f"{MONGODB}-{service}"}
             for service in SERVICES]
    return {"apiVersion": "mongodbcommunity.mongodb.com/v1", "kind": "MongoDBCommunity",
            "metadata": _meta(MONGODB),
            "spec": {"type": "ReplicaSet", "members": 3, "version": MONGODB_VERSION,
                     "security": {"authentication": {"modes": ["SCRAM"]}},
                     "additionalConnectionStringConfig": {"w": "majority"},
                     "users": users}}


def namespace() -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}


def pod_monitor(service: str) -> dict:
    """Prometheus Operator scrapes each pod's metrics route on its own port (the edge never
    routes it). The job label is "hocvu/hocvu-<service>", which the alert rules match."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
            "metadata": _meta(f"hocvu-{service}", service),
            "spec": {"selector": {"matchLabels": _labels(service)},
                     "podMetricsEndpoints": [{"port": "http", "path": f"/api/{service}/metrics",
                                              "interval": "30s", "scrapeTimeout": "10s"}]}}


def rabbitmq_pod_monitor() -> dict:
    """RabbitMQ's own exporter (the rabbitmq_prometheus plugin, on by default in the cluster
    operator's pods, port 15692): per-queue depths and consumers, which the dead-letter and
    consumer alerts read."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
            "metadata": _meta(f"{RABBITMQ}-queues"),
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": RABBITMQ}},
                     "podMetricsEndpoints": [
                         {"port": "prometheus", "path": "/metrics", "interval": "30s"},
                         {"port": "prometheus", "path": "/metrics/detailed", "interval": "60s",
                          "params": {"family": ["queue_coarse_metrics",
                                                "queue_consumer_count"]}}]}}


def alert_rules() -> dict:
    """deploy/monitoring/alerts.yaml, the plain Prometheus rule file, as a PrometheusRule."""
    groups = yaml.safe_load((ROOT / "deploy" / "monitoring" / "alerts.yaml").read_text())["groups"]
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {**_meta("hocvu-alerts"), "labels": {"app.kubernetes.io/part-of": "hocvu"}},
            "spec": {"groups": groups}}


def files() -> dict[str, list[dict]]:
    """File name under base/ -> its documents."""
    out = {"namespace.yaml": [namespace()],
           "rabbitmq.yaml": [rabbitmq_cluster(), rabbitmq_vhost(),
                             *(rabbitmq_user(service) for service in SERVICES),
                             *(rabbitmq_permission(service) for service in SERVICES)],
           "mongodb.yaml": [mongodb_replica_set()], "ingress.yaml": ingresses(),
           "monitoring.yaml": [*(pod_monitor(service) for service in SERVICES),
                               rabbitmq_pod_monitor(), alert_rules()]}
    out.update({f"{service}.yaml": service_documents(service) for service in SERVICES})
    return out


HEADER = "# Written by deploy/k8s/generate.py: change that script and run it again.\n"


def render() -> dict[str, str]:
    rendered = {name: HEADER + yaml.safe_dump_all(documents, sort_keys=False)
                for name, documents in files().items()}
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": list(files())}
    rendered["kustomization.yaml"] = HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    return rendered


def main() -> None:
    BASE.mkdir(exist_ok=True)
    for name, text in render().items():
        (BASE / name).write_text(text)
    print(f"wrote {len(render())} files to {BASE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
