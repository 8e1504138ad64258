"""The autoscaler's policy comes from the service's `bulkocr.autoscale*` labels over its
settings' defaults; a service that has not opted in is left alone; settings that cannot
work are refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from bulkocr.settings import load
from bulkocr_autoscaler.decision import Policy, PolicyError
from bulkocr_autoscaler.engine_api import Service, base_url
from bulkocr_autoscaler.labels import policy_from_labels
from bulkocr_autoscaler.settings import AutoscalerSettings

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = Policy(min_replicas=1, max_replicas=8, target=20, hysteresis=0.25, up_cooldown_s=5, down_cooldown_s=60)


def test_the_labels_set_min_max_and_target_over_the_defaults():
    """min, max and target come from the labels; the rest (band, cooldowns) from the settings."""
    labels = {
        "bulkocr.autoscale": "true",
        "bulkocr.autoscale.min": "2",
        "bulkocr.autoscale.max": " 12 ",
        "bulkocr.autoscale.target": "50",
        "com.docker.stack.namespace": "bulkocr",
    }
    policy = policy_from_labels(labels, DEFAULTS)
    assert policy == Policy(
        min_replicas=2, max_replicas=12, target=50, hysteresis=0.25, up_cooldown_s=5, down_cooldown_s=60
    )


def test_a_missing_bound_label_keeps_the_default():
    """Opting in alone scales with the settings' bounds and target."""
    assert policy_from_labels({"bulkocr.autoscale": "TRUE"}, DEFAULTS) == DEFAULTS
    assert policy_from_labels({"bulkocr.autoscale": "true", "bulkocr.autoscale.max": "3"}, DEFAULTS) == Policy(
        min_replicas=1, max_replicas=3, target=20, hysteresis=0.25, up_cooldown_s=5, down_cooldown_s=60
    )


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"bulkocr.autoscale": "false"},
        {"bulkocr.autoscale": "yes please"},
        {"bulkocr.autoscale.min": "1", "bulkocr.autoscale.max": "4"},
    ],
)
def test_a_service_that_has_not_opted_in_has_no_policy(labels):
    """Without `bulkocr.autoscale: "true"` nothing is decided for the service, whatever else it says."""
    assert policy_from_labels(labels, DEFAULTS) is None


@pytest.mark.parametrize(
    "labels",
    [
        {"bulkocr.autoscale.min": "one"},
        {"bulkocr.autoscale.max": "-4"},
        {"bulkocr.autoscale.target": "2.5"},
        {"bulkocr.autoscale.target": ""},
        {"bulkocr.autoscale.min": "0"},
        {"bulkocr.autoscale.min": "9"},  # above the default max 8
        {"bulkocr.autoscale.min": "4", "bulkocr.autoscale.max": "3"},
        {"bulkocr.autoscale.target": "0"},
    ],
)
def test_labels_that_make_no_sense_are_refused(labels):
    """A bound that is not a whole number, or bounds that contradict each other, raise with
    the reason rather than scale on a guess."""
    with pytest.raises(PolicyError):
        policy_from_labels({"bulkocr.autoscale": "true", **labels}, DEFAULTS)


def test_the_stack_file_labels_the_workers_with_a_valid_policy():
    """The labels swarm-stack.yml gives the ocr-worker service make a policy, as written."""
    stack = yaml.safe_load((ROOT / "swarm-stack.yml").read_text())
    labels = stack["services"]["ocr-worker"]["deploy"]["labels"]
    policy = policy_from_labels(labels, load(AutoscalerSettings).default_policy())
    assert policy is not None
    assert (policy.min_replicas, policy.max_replicas, policy.target) == (1, 16, 20)


def test_a_service_spec_gives_its_labels_and_replicas():
    """Labels are the spec's own (deploy.labels), not the containers'; only a replicated
    service has a count to change."""
    spec = {
        "Name": "bulkocr_ocr-worker",
        "Labels": {"bulkocr.autoscale": "true"},
        "TaskTemplate": {"ContainerSpec": {"Image": "bulkocr:ocr", "Labels": {"bulkocr.autoscale": "false"}}},
        "Mode": {"Replicated": {"Replicas": 3}},
    }
    service = Service("abc", "bulkocr_ocr-worker", 7, spec)
    assert service.labels == {"bulkocr.autoscale": "true"}
    assert service.replicas == 3
    assert Service("abc", "x", 7, {**spec, "Mode": {"Global": {}}}).replicas is None
    assert Service("abc", "x", 7, {**spec, "Labels": None}).labels == {}


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch):
    """BULKOCR_AUTOSCALER_* variables set the service, the pace and the Engine endpoint."""
    monkeypatch.setenv("BULKOCR_AUTOSCALER_SERVICE", "ocr_ocr-worker")
    monkeypatch.setenv("BULKOCR_AUTOSCALER_DRY_RUN", "true")
    monkeypatch.setenv("BULKOCR_AUTOSCALER_DOCKER_HOST", "tcp://manager1:2376")
    monkeypatch.setenv("BULKOCR_AUTOSCALER_DOCKER_TLS_CA", "/run/secrets/docker_ca.pem")
    settings = load(AutoscalerSettings)
    assert settings.service == "ocr_ocr-worker"
    assert settings.dry_run is True
    assert base_url(settings) == "https://manager1:2376"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("unix:///var/run/docker.sock", "http://docker"),
        ("tcp://docker-proxy:2375", "http://docker-proxy:2375"),
        ("https://manager1:2376", "https://manager1:2376"),
    ],
)
def test_the_engine_is_addressed_as_docker_host_says(host, url):
    """A socket, a plain TCP endpoint (a socket proxy on the overlay) or TLS."""
    assert base_url(AutoscalerSettings(docker_host=host)) == url


@pytest.mark.parametrize(
    "options",
    [
        {"docker_host": "ssh://manager1"},
        {"docker_tls_cert": "/certs/cert.pem"},  # a certificate without its key
        {"docker_api_version": "v1.44"},
        {"min_replicas": 5, "max_replicas": 4},
        {"hysteresis": 1},
        {"interval_s": 0},
    ],
)
def test_settings_that_cannot_work_are_refused(options):
    """Refused at start with the reason, rather than failing every round."""
    with pytest.raises(ValidationError):
        AutoscalerSettings.model_validate(options)
