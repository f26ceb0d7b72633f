"""docker-compose.yml, the Dockerfile and the stack launcher wire the stack the same way."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from loadtest.instances import SERVE_CMD, instance_env
from loadtest.nginx_conf import TEMPLATE
from loadtest.stack import Stack, StackOptions

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _dispatch_services(compose: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in compose["services"].items() if k.startswith("dispatch-")}


def test_instances_get_the_same_variables_as_the_launcher_gives() -> None:
    launcher = set(instance_env(8080, "dispatch-1", "s", redis_cluster_url="redis://x:1/0"))
    services = _dispatch_services(_compose())
    assert len(services) == 3
    for name, svc in services.items():
        assert set(svc["environment"]) == launcher, name
        assert svc["environment"]["DISPATCH_INSTANCE_ID"] == name


def test_the_launcher_configures_instances_only_through_those_variables() -> None:
    assert SERVE_CMD[-2:] == ("dispatch", "serve")  # no flags: everything from the environment
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "dispatch", "serve"]' in dockerfile


def test_nginx_is_rendered_from_the_one_template_for_every_instance() -> None:
    compose = _compose()
    render = compose["services"]["nginx-config"]
    assert render["entrypoint"] == ["python", "-m", "loadtest.nginx_conf"]
    args = dict(a.removeprefix("--").split("=", 1) for a in render["command"])
    upstreams = [a.split("=", 1)[1] for a in render["command"] if a.startswith("--upstream=")]
    services = _dispatch_services(compose)
    assert upstreams == [
        f"{name}:{services[name]['environment']['DISPATCH_PORT']}" for name in sorted(services)
    ]
    nginx = compose["services"]["nginx"]
    assert nginx["command"] == ["nginx", "-c", args["out"]]
    assert TEMPLATE.is_file() and TEMPLATE.parent.name == "nginx"
    # nginx's listen port is the one it publishes.
    assert nginx["ports"] == [f"{args['listen']}:{args['listen']}"]


def test_every_part_uses_the_same_token_secret_variable() -> None:
    compose = _compose()
    secrets = {
        svc["environment"]["DISPATCH_JWT_SECRET"] for svc in _dispatch_services(compose).values()
    }
    secrets.add(compose["services"]["locust-master"]["environment"]["DISPATCH_JWT_SECRET"])
    assert len(secrets) == 1
    assert next(iter(secrets)).startswith("${DISPATCH_JWT_SECRET")
    locustfile = (ROOT / "loadtest" / "locustfile.py").read_text()
    assert 'env_var="DISPATCH_JWT_SECRET"' in locustfile


def test_the_redis_cluster_has_six_nodes_and_one_replica_each() -> None:
    services = _compose()["services"]
    nodes = [k for k in services if re.fullmatch(r"redis-\d", k)]
    assert len(nodes) == 6
    create = " ".join(services["redis-cluster-create"]["command"])
    assert "--cluster-replicas 1" in create
    assert all(n in create for n in nodes)


def test_the_image_runs_as_non_root_with_a_health_check_on_healthz() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    service_stage = dockerfile[dockerfile.index("AS service") :]
    assert re.search(r"^USER app$", service_stage, re.M)
    assert "HEALTHCHECK" in service_stage and "/healthz" in service_stage
    assert "python:3.11-slim" in dockerfile


def test_embedded_means_one_instance() -> None:
    try:
        Stack(StackOptions(instances=2, embedded=True, run_dir=Path("/nonexistent-not-used")))
    except ValueError:
        return
    raise AssertionError("--embedded with 2 instances was accepted")


def test_the_launchers_own_folder_is_open_to_nginxs_workers() -> None:
    """nginx's workers (nobody) buffer request bodies under it: in a folder only root may
    enter, every fleet batch above 16 KB was answered 500."""
    stack = Stack(StackOptions(instances=1))
    try:
        assert stack.run_dir.stat().st_mode & 0o777 == 0o755
    finally:
        stack.stop()
    assert not stack.run_dir.exists()
