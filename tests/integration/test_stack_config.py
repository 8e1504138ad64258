"""The Swarm stack as Docker itself reads it (`docker stack config`, which needs no engine):
only the gateway (or, with the TLS overlay, the proxy) is published, MongoDB demands a
password that comes from a secret, every service has a memory limit, the images run
as a non-root user, and the autoscaler runs once on a manager with the Engine's socket."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bulkocr_autoscaler.labels import policy_from_labels
from bulkocr_autoscaler.settings import AutoscalerSettings
from bulkocr_gateway.settings import GatewaySettings
from tests.unit.test_settings_doc import settings_classes

REPO = Path(__file__).resolve().parents[2]
STACK = "swarm-stack.yml"
TLS_OVERLAY = "deploy/swarm-tls.yml"
DOMAIN = "ocr.example.org"
GIB = 1 << 30

# The stack's own bulkocr services (python -m bulkocr_*) and the servers they use.
BULKOCR_SERVICES = {"gateway", "ingest", "aggregator", "outputs", "uploader", "notifier", "ocr-worker"}
# bulkocr services that never touch the database, so never get its URL and password.
WITHOUT_DATABASE = {"autoscaler"}
INFRASTRUCTURE = {"nsqlookupd", "nsqd", "nsqadmin", "mongo"}

Config = dict[str, Any]


def docker_stack_config(*files: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`docker stack config` over the files, with only `env` for BULKOCR_* variables."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail(
            "the `docker` client is not on PATH: these tests read the stack with `docker stack config` "
            "(the client alone, no engine); install Docker's CLI"
        )
    # The caller's BULKOCR_* variables would be interpolated into the stack: leave them out.
    clean = {name: value for name, value in os.environ.items() if not name.startswith("BULKOCR_")}
    arguments = [arg for name in files for arg in ("-c", str(REPO / name))]
    return subprocess.run(
        [docker, "stack", "config", *arguments],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
        check=False,
    )


def stack_config(*files: str, **env: str) -> Config:
    """The merged, interpolated stack as `docker stack deploy` would get it."""
    result = docker_stack_config(*files, **env)
    assert result.returncode == 0, f"docker stack config failed: {result.stderr}"
    loaded = yaml.safe_load(result.stdout)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def stack() -> Config:
    return stack_config(STACK)


@pytest.fixture(scope="module")
def tls_stack() -> Config:
    return stack_config(STACK, TLS_OVERLAY, BULKOCR_DOMAIN=DOMAIN)


def published_ports(service: Config) -> list[int]:
    return [int(port["published"]) for port in service.get("ports") or [] if port.get("published")]


def secret_names(service: Config) -> set[str]:
    return {entry["source"] for entry in service.get("secrets") or []}


def memory_limit(service: Config) -> int:
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    return int(limits.get("memory") or 0)


def test_the_servers_behind_the_services_are_never_published(stack, tls_stack):
    """nsqd, nsqlookupd, nsqadmin (no login; it can delete topics) and MongoDB are reachable
    only on the encrypted overlay network, with or without the TLS overlay."""
    assert set(stack["services"]) >= INFRASTRUCTURE
    for config in (stack, tls_stack):
        for name in INFRASTRUCTURE:
            assert published_ports(config["services"][name]) == [], f"{name} is published"
    assert stack["networks"]["bulkocr"]["driver_opts"]["encrypted"] == "true"


def test_only_the_gateway_is_published_in_the_plain_stack(stack):
    """Without TLS the gateway's 8080 is the stack's one way in."""
    published = {name: published_ports(service) for name, service in stack["services"].items()}
    assert {name: ports for name, ports in published.items() if ports} == {"gateway": [8080]}


def test_mongo_demands_a_root_password_read_from_a_secret(stack):
    """The image starts mongod with --auth when it has a root user and a password, and the
    password is a file under /run/secrets from an external secret, never a plain variable."""
    mongo = stack["services"]["mongo"]
    environment = mongo["environment"]
    assert environment["MONGO_INITDB_ROOT_USERNAME"]
    assert "MONGO_INITDB_ROOT_PASSWORD" not in environment
    password_file = environment["MONGO_INITDB_ROOT_PASSWORD_FILE"]
    secret = password_file.removeprefix("/run/secrets/")
    assert password_file == f"/run/secrets/{secret}"
    assert secret in secret_names(mongo)
    assert stack["secrets"][secret]["external"] is True


def test_mongo_cache_fits_inside_its_memory_limit(stack):
    """The WiredTiger cache is set explicitly (MongoDB would size it from the node's memory)
    and follows MongoDB's own rule within the limit: at most half of (limit - 1 GiB)."""
    mongo = stack["services"]["mongo"]
    command = " ".join(mongo["command"])
    found = re.search(r"--wiredTigerCacheSizeGB[ =]([0-9.]+)", command)
    assert found, f"mongo's command sets no cache size: {command}"
    assert command.startswith("mongod "), "the image reads the *_FILE variables only for mongod"
    assert float(found.group(1)) * GIB <= (memory_limit(mongo) - GIB) / 2


def test_every_bulkocr_service_reads_the_mongo_url_from_its_secret(stack):
    """The URL carries the password, so it is the secret bulkocr_mongo_url for every bulkocr
    service that uses the database (and for no other), and no BULKOCR_MONGO_URL variable
    (which would win over the file) is left."""
    services = stack["services"]
    running_bulkocr = {name for name, service in services.items() if "bulkocr_" in " ".join(service["command"])}
    assert running_bulkocr == BULKOCR_SERVICES | WITHOUT_DATABASE
    for name in BULKOCR_SERVICES:
        assert "bulkocr_mongo_url" in secret_names(services[name]), f"{name} lacks the secret bulkocr_mongo_url"
        assert "BULKOCR_MONGO_URL" not in (services[name].get("environment") or {}), name
    for name in WITHOUT_DATABASE:
        assert secret_names(services[name]) == set(), f"{name} needs no secret"
    assert stack["secrets"]["bulkocr_mongo_url"]["external"] is True
    assert "BULKOCR_MONGO_URL" not in (REPO / STACK).read_text()


def test_a_rotated_secret_is_named_by_a_variable():
    """After a rotation (docs/security.md) later deploys mount the new version: each secret's
    Docker name follows its variable, while services keep the key, so the file name."""
    rotated = stack_config(STACK, BULKOCR_SECRET_API_TOKENS="bulkocr_api_tokens_2", BULKOCR_SECRET_MONGO_URL="url_2")
    assert rotated["secrets"]["bulkocr_api_tokens"]["name"] == "bulkocr_api_tokens_2"
    assert rotated["secrets"]["bulkocr_mongo_url"]["name"] == "url_2"
    assert "bulkocr_mongo_url" in secret_names(rotated["services"]["gateway"])


@pytest.mark.parametrize("which", ["stack", "tls_stack"])
def test_every_service_has_a_memory_limit(which, request):
    """A leaking or overloaded service is killed and restarted alone instead of starving its
    node (the proxy of the TLS overlay included)."""
    config = request.getfixturevalue(which)
    unlimited = [name for name, service in config["services"].items() if memory_limit(service) <= 0]
    assert unlimited == []


def test_tls_overlay_publishes_80_and_443_on_a_proxy_to_the_gateway(tls_stack):
    """The overlay adds Caddy with its Caddyfile as a Docker config, on the stack's network,
    publishing HTTP (for the redirect and ACME) and HTTPS."""
    proxy = tls_stack["services"]["proxy"]
    assert proxy["image"].startswith("caddy:2")
    assert sorted(published_ports(proxy)) == [80, 443]
    assert "bulkocr" in proxy["networks"]
    assert proxy["environment"]["BULKOCR_DOMAIN"] == DOMAIN
    (mounted,) = proxy["configs"]
    assert mounted["target"] == "/etc/caddy/Caddyfile"
    assert Path(tls_stack["configs"][mounted["source"]]["file"]) == REPO / "deploy" / "Caddyfile"


def test_caddyfile_serves_the_domain_and_lets_the_largest_upload_through():
    """The site is the domain from the variable, requests go to gateway:8080, and the body
    limit is above the gateway's own (2 GiB), so the gateway's 413 is the one clients see."""
    caddyfile = (REPO / "deploy" / "Caddyfile").read_text()
    assert re.search(r"^\{\$BULKOCR_DOMAIN\} \{$", caddyfile, re.MULTILINE)
    assert re.search(r"^\s*reverse_proxy gateway:8080$", caddyfile, re.MULTILINE)
    size = re.search(r"max_size (\d+)MiB", caddyfile)
    assert size, "the Caddyfile sets no request body limit"
    assert int(size.group(1)) << 20 > GatewaySettings().max_upload_bytes >= 2 * GIB


def test_tls_overlay_refuses_to_deploy_without_a_domain():
    """No BULKOCR_DOMAIN, no stack: Caddy would otherwise serve a site with no name."""
    result = docker_stack_config(STACK, TLS_OVERLAY)
    assert result.returncode != 0
    assert "BULKOCR_DOMAIN" in result.stderr


# --- the images ---------------------------------------------------------------------------


def dockerfile_users(path: Path) -> dict[str, str | None]:
    """Each stage's effective USER (None: the base image's, root for python:*), following
    `FROM <stage>` inheritance."""
    text = re.sub(r"\\\n", " ", path.read_text())
    users: dict[str, str | None] = {}
    stage: str | None = None
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            parent = words[1]
            stage = words[3] if len(words) >= 4 and words[2].upper() == "AS" else f"#{len(users)}"
            users[stage] = users.get(parent)
        elif instruction == "USER" and stage is not None:
            users[stage] = words[1]
    return users


def test_the_stack_images_run_as_a_non_root_user(stack):
    """Every bulkocr image the stack runs is a Dockerfile target whose last USER is an
    unprivileged account, so a hostile upload that exploits a parser gets no root."""
    users = dockerfile_users(REPO / "deploy" / "Dockerfile")
    services = BULKOCR_SERVICES | WITHOUT_DATABASE
    targets = {stack["services"][name]["image"].rpartition(":")[2] for name in services}
    assert targets == {"app", "ocr"}
    for target in targets:
        user = users[target] or "root"
        assert user.partition(":")[0] not in ("root", "0"), f"target {target} runs as {user}"
    for name in services:  # nor does a service that names its own user
        user = str(stack["services"][name].get("user") or "bulkocr")
        assert user.partition(":")[0] not in ("root", "0"), f"{name} runs as {user}"


# --- the autoscaler -----------------------------------------------------------------------


def test_the_autoscaler_runs_once_on_a_manager_with_the_engine_socket(stack):
    """One replica (two would each follow their own cooldowns), on a manager (only a
    manager's Engine reads and updates services), with the socket and the socket's group,
    published nowhere, scaling this stack's workers."""
    autoscaler = stack["services"]["autoscaler"]
    assert autoscaler["command"] == ["python", "-m", "bulkocr_autoscaler"]
    assert autoscaler["deploy"]["replicas"] == 1
    assert "node.role == manager" in autoscaler["deploy"]["placement"]["constraints"]
    (mount,) = autoscaler["volumes"]
    assert (mount["type"], mount["source"], mount["target"]) == ("bind", "/var/run/docker.sock", "/var/run/docker.sock")
    assert autoscaler["user"] == "10001:999"
    assert stack_config(STACK, BULKOCR_DOCKER_GID="988")["services"]["autoscaler"]["user"] == "10001:988"
    assert published_ports(autoscaler) == []
    environment = autoscaler["environment"]
    # Swarm expands the template per task: <the stack's name>_ocr-worker.
    assert (
        environment["BULKOCR_AUTOSCALER_SERVICE"] == '{{index .Service.Labels "com.docker.stack.namespace"}}_ocr-worker'
    )
    assert environment["BULKOCR_AUTOSCALER_DRY_RUN"] == "false"
    assert environment["BULKOCR_NSQ_LOOKUPD_HTTP_ADDRESSES"] == "nsqlookupd:4161"


def test_the_workers_opt_in_to_autoscaling_with_a_valid_policy(stack):
    """The ocr-worker's deploy labels (the service's own labels in Swarm) opt in, with bounds
    the autoscaler accepts; no other service is scaled."""
    labelled = {
        name
        for name, service in stack["services"].items()
        if ((service.get("deploy") or {}).get("labels") or {}).get("bulkocr.autoscale") == "true"
    }
    assert labelled == {"ocr-worker"}
    labels = stack["services"]["ocr-worker"]["deploy"]["labels"]
    policy = policy_from_labels(labels, AutoscalerSettings().default_policy())
    assert policy is not None
    assert 1 <= policy.min_replicas <= policy.max_replicas


def setting_variables() -> set[str]:
    """Every BULKOCR_* variable some settings class of the code reads."""
    return {
        f"{cls.model_config.get('env_prefix', '')}{name}".upper()
        for cls in settings_classes()
        for name in cls.model_fields
    }


def test_every_bulkocr_service_runs_reads_and_is_checked_as_the_code_says(stack):
    """No drift between the stack and the code: each command runs a module that exists, each
    BULKOCR_* variable and each secret is a setting the code reads, and each healthcheck asks
    the service's own ops port, which the stack never moves away from the default the check uses."""
    known = setting_variables()
    for name in BULKOCR_SERVICES | WITHOUT_DATABASE:
        service = stack["services"][name]
        command = service["command"]
        assert command[:2] == ["python", "-m"], (name, command)
        assert importlib.util.find_spec(command[2]) is not None, f"{name} runs {command[2]}, which does not exist"
        environment = service.get("environment") or {}
        unknown = [variable for variable in environment if variable.startswith("BULKOCR_") and variable not in known]
        assert unknown == [], f"{name} sets variables no code reads: {unknown}"
        assert "BULKOCR_OPS_PORT" not in environment, name
        for secret in secret_names(service):
            assert secret.upper() in known, f"{name}'s secret {secret} is no setting"
        assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "bulkocr.healthcheck", "livez"], name
    assert importlib.util.find_spec("bulkocr.healthcheck") is not None


def test_every_server_has_a_healthcheck(stack):
    """Swarm restarts a server that stopped answering, not only one whose process exited."""
    unchecked = [name for name, service in stack["services"].items() if not service.get("healthcheck", {}).get("test")]
    assert unchecked == []


COMPOSE = "deploy/compose.yml"


def test_the_one_host_compose_file_runs_what_the_stack_runs():
    """deploy/compose.yml (read by Docker's compose loader, as `docker stack config` does) has the
    stack's services, and each bulkocr service runs the same command with the same settings,
    secrets and healthcheck; its gateway listens on loopback only."""
    stack, compose = stack_config(STACK), stack_config(COMPOSE)
    assert set(compose["services"]) == BULKOCR_SERVICES | {"nsqlookupd", "nsqd", "mongo"}
    for name in BULKOCR_SERVICES:
        ours, theirs = compose["services"][name], stack["services"][name]
        assert ours["command"] == theirs["command"], name
        assert ours["healthcheck"] == theirs["healthcheck"], name
        assert secret_names(ours) == secret_names(theirs), name
        # One host, one nsqd: the per-node nsqd of the cluster is not there to be found.
        cluster_only = {"BULKOCR_NSQ_LOCAL_NSQD_HOSTNAME"}
        assert set(ours.get("environment") or {}) == set(theirs.get("environment") or {}) - cluster_only, name
    raw = yaml.safe_load((REPO / COMPOSE).read_text())
    assert raw["services"]["gateway"]["ports"] == ["127.0.0.1:8080:8080"]
    assert all("file" in secret for secret in raw["secrets"].values())


SINGLETONS = {"aggregator", "uploader", "autoscaler"}


def test_rolling_updates_roll_back_and_singletons_never_run_twice(stack):
    """Every bulkocr service updates one task at a time and rolls back an update whose tasks
    fail; the services that must run alone stop the old task before starting the new one."""
    for name in BULKOCR_SERVICES | WITHOUT_DATABASE:
        deploy = stack["services"][name]["deploy"]
        update = deploy["update_config"]
        assert (update["parallelism"], update["failure_action"]) == (1, "rollback"), name
        expected = "stop-first" if name in SINGLETONS else "start-first"
        assert update["order"] == expected, name
        assert deploy["rollback_config"]["order"] == "stop-first", name


def test_every_ocr_node_runs_its_own_nsqd_which_its_workers_publish_to(stack):
    """nsqd-node runs once on each node labelled bulkocr.ocr=true, unpublished, with its own
    volume, registered under nsqd-<node>; the workers run on the same nodes and look for that
    very name, so each node's results go to its own nsqd."""
    services = stack["services"]
    node = services["nsqd-node"]
    label = "node.labels.bulkocr.ocr == true"
    assert node["deploy"]["mode"] == "global"
    assert node["deploy"]["placement"]["constraints"] == [label]
    assert published_ports(node) == []
    assert node["volumes"][0]["source"] == "nsqd-node-data"
    assert "--lookupd-tcp-address=nsqlookupd:4160" in " ".join(node["command"])
    worker = services["ocr-worker"]
    assert label in worker["deploy"]["placement"]["constraints"]
    assert worker["environment"]["BULKOCR_NSQ_LOCAL_NSQD_HOSTNAME"] == node["hostname"] == "nsqd-{{.Node.Hostname}}"
