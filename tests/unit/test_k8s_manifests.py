"""deploy/k8s: every kustomize overlay rendered here (no kubectl), valid against the
Kubernetes schemas (kubernetes-validate, offline), lint-clean (yamllint), and in step with
the service: its drain on SIGTERM, its settings and the stack's nginx rules."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from dispatch.settings import Settings
from loadtest.nginx_conf import GatewayLimits, NginxSettings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
KUBERNETES_VERSION = "1.30"
LINT = YamlLintConfig(
    "extends: default\n"
    "rules:\n"
    "  line-length: {max: 100}\n"
    "  document-start: disable\n"
    "  comments: {min-spaces-from-content: 2}\n"
)


# -- a small kustomize: resources, namespace, labels, images, strategic-merge patches ----
def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for these files: maps merge key by key, lists
    of named items (containers, env, ports, volumes) merge by name, other lists replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    named = isinstance(base, list) and isinstance(patch, list)
    if named and all(isinstance(x, dict) and "name" in x for x in base + patch):
        out_list = list(base)
        for item in patch:
            at = [i for i, x in enumerate(out_list) if x["name"] == item["name"]]
            if at:
                out_list[at[0]] = _merge(out_list[at[0]], item)
            else:
                out_list.append(item)
        return out_list
    return patch


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def render(folder: Path) -> list[dict[str, Any]]:
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert k["kind"] == "Kustomization"
    unknown = set(k) - {"apiVersion", "kind", "resources", "namespace", "labels", "images",
                        "patches"}  # fmt: skip
    assert not unknown, f"{folder}: this renderer does not know {unknown}"
    docs: list[dict[str, Any]] = []
    for res in k.get("resources", []):
        path = folder / res
        if path.is_dir():
            docs += render(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    docs = copy.deepcopy(docs)
    for p in k.get("patches", []):
        patch = yaml.safe_load((folder / p["path"]).read_text())
        key = (patch["kind"], patch["metadata"]["name"])
        at = [i for i, d in enumerate(docs) if (d["kind"], d["metadata"]["name"]) == key]
        assert len(at) == 1, f"{folder}/{p['path']}: patches {key}, found {len(at)}"
        docs[at[0]] = _merge(docs[at[0]], patch)
    for d in docs:
        if "namespace" in k:
            d["metadata"]["namespace"] = k["namespace"]
        for group in k.get("labels", []):
            d["metadata"].setdefault("labels", {}).update(group["pairs"])
        for image in k.get("images", []):
            for c in _containers(d):
                name, _, tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    return docs


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.fixture(params=OVERLAYS, ids=lambda p: p.name)
def docs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


# -- the tests -----------------------------------------------------------------------------
def test_there_is_a_dev_and_a_production_overlay():
    assert {p.name for p in OVERLAYS} == {"dev", "production"}


def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(docs):
    for d in docs:
        # strict: a misspelt field is an error, not silently dropped by the API server.
        kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
            "Ingress", "StatefulSet", "ConfigMap", "Job"} <= kinds  # fmt: skip


def test_the_ingress_nginx_controller_settings_are_valid_too():
    for d in render(K8S / "ingress-nginx"):
        kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)
        assert d["metadata"]["namespace"] == "ingress-nginx"


def test_a_misspelt_field_fails_the_validation():
    bad = copy.deepcopy(one(render(K8S / "base"), "Deployment", "dispatch"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_every_yaml_file_is_lint_clean():
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) >= 10
    problems = [f"{f}:{p.line}: {p.message}" for f in files
                for p in linter.run(f.read_text(), LINT, str(f))]  # fmt: skip
    assert problems == []


def test_readiness_is_readyz_and_the_grace_period_covers_pre_stop_and_the_drain(docs):
    dep = one(docs, "Deployment", "dispatch")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"  # never touches Redis
    pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    config = one(docs, "ConfigMap", "dispatch-config")["data"]
    drain = float(config["DISPATCH_SHUTDOWN_TIMEOUT_S"])
    assert pause >= 5  # endpoints leave ingress-nginx's list before SIGTERM stops the listener
    assert pause + drain < pod["terminationGracePeriodSeconds"]


def test_every_setting_given_to_the_pods_is_a_real_one_and_the_secret_comes_from_a_secret(docs):
    fields = {f"DISPATCH_{name.upper()}" for name in Settings.__dataclass_fields__}
    config = one(docs, "ConfigMap", "dispatch-config")["data"]
    assert set(config) <= fields
    env = {e["name"]: e for e in one(docs, "Deployment", "dispatch")["spec"]["template"]
           ["spec"]["containers"][0]["env"]}  # fmt: skip
    assert set(env) <= fields
    ref = env["DISPATCH_JWT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "dispatch-secrets", "key": "jwt-secret"}
    # No secret value is ever committed: the Secret is made outside git.
    assert not [d for d in docs if d["kind"] == "Secret"]


def test_the_pdb_hpa_and_service_select_the_deployments_pods(docs):
    dep = one(docs, "Deployment", "dispatch")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    pdb = one(docs, "PodDisruptionBudget", "dispatch")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one(docs, "Service", "dispatch")["spec"]["selector"].items() <= labels.items()
    # The HPA owns the count: a replicas field would reset it on every apply.
    assert "replicas" not in dep["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler", "dispatch")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "dispatch"}  # fmt: skip
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilization is against the request: one pod is one core (one event loop).
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]


def _rps(rate: str) -> int:
    assert rate.endswith("r/s")
    return int(rate[: -len("r/s")])


def test_the_ingress_carries_the_stack_nginx_limits_and_stream_rules(docs):
    limits, nginx = GatewayLimits(), NginxSettings(upstreams=("x:1",), listen="1", run_dir="/")
    expect = {
        "dispatch-locations": (limits.rate_locations, limits.burst_locations),
        "dispatch-rides": (limits.rate_rides, limits.burst_rides),
        "dispatch-reads": (limits.rate_reads, limits.burst_reads),
    }
    prefix = "nginx.ingress.kubernetes.io/"
    for name, (rate, burst) in expect.items():
        a = one(docs, "Ingress", name)["metadata"]["annotations"]
        rps = int(a[prefix + "limit-rps"])
        assert rps == _rps(rate)
        assert rps * int(a[prefix + "limit-burst-multiplier"]) == burst
        assert int(a[prefix + "limit-connections"]) == limits.conn_per_addr
        assert a[prefix + "proxy-body-size"] == nginx.client_max_body_size
        assert a[prefix + "proxy-connect-timeout"] == "2"
        # As the stack's: a GET (or a POST that never reached a pod) goes to another pod.
        assert a[prefix + "proxy-next-upstream"] == "error timeout http_503"
    streams = one(docs, "Ingress", "dispatch-streams")
    a = streams["metadata"]["annotations"]
    assert a[prefix + "proxy-buffering"] == "off"  # server-sent events unbuffered
    assert a[prefix + "proxy-read-timeout"] == a[prefix + "proxy-send-timeout"] == "3600"
    paths = {p["path"] for r in streams["spec"]["rules"] for p in r["http"]["paths"]}
    assert paths == {"/v1/drivers/[^/]+/stream$", "/v1/rides/[^/]+/events$"}


def test_the_template_still_has_the_rules_the_ingress_copies():
    from loadtest.nginx_conf import TEMPLATE

    text = TEMPLATE.read_text()
    rules = (
        "proxy_buffering off;",
        "proxy_read_timeout 1h;",
        "proxy_connect_timeout 2s;",
        "proxy_next_upstream error timeout http_503;",
        "proxy_set_header Upgrade $http_upgrade;",
        "limit_req_status 429;",
    )
    for rule in rules:
        assert rule in text, f"the stack's nginx changed ({rule!r}): update deploy/k8s too"


def test_redis_cluster_nodes_come_in_master_replica_pairs_and_the_job_joins_them_all(docs):
    sts = one(docs, "StatefulSet", "redis-cluster")
    nodes = sts["spec"]["replicas"]
    assert nodes >= 6 and nodes % 2 == 0
    job = one(docs, "Job", "redis-cluster-create")["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e["value"] for e in job["env"]}["NODES"] == str(nodes)
    assert "--cluster-replicas 1" in job["args"][0]
    url = one(docs, "ConfigMap", "dispatch-config")["data"]["DISPATCH_REDIS_CLUSTER_URL"]
    assert url.startswith(f"redis://{sts['metadata']['name']}-0.{sts['spec']['serviceName']}:")


def test_the_image_is_set_by_the_overlay():
    prod = one(render(K8S / "overlays" / "production"), "Deployment", "dispatch")
    image = prod["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/geo-dispatch:0.1.0"


def test_the_merge_replaces_plain_lists_and_merges_named_ones():
    base = {"a": [1, 2], "c": [{"name": "x", "v": 1, "w": 1}], "d": {"e": 1}}
    patch = {"a": [3], "c": [{"name": "x", "v": 2}, {"name": "y"}], "d": {"f": 2}}
    assert _merge(base, patch) == {
        "a": [3],
        "c": [{"name": "x", "v": 2, "w": 1}, {"name": "y"}],
        "d": {"e": 1, "f": 2},
    }
