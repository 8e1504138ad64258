"""The autoscaler's Docker Engine API client against the fake Engine (tests/fakes/docker_engine.py):
the pinned version, the whole spec sent back at the version read, conflicts read again and
retried, errors said as the Engine said them; over the unix socket, plain TCP and TLS with a
client certificate. The fake's own answers are checked first, so the rest means something."""

from __future__ import annotations

import copy
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bulkocr_autoscaler.engine_api import EngineApi, EngineError, VersionConflict, engine_api
from bulkocr_autoscaler.settings import AutoscalerSettings
from tests.fakes.docker_engine import OUT_OF_SEQUENCE, FakeDockerEngine

pytestmark = pytest.mark.integration

NAME = "bulkocr_ocr-worker"
LABELS = {"bulkocr.autoscale": "true", "bulkocr.autoscale.max": "16"}


@pytest.fixture
async def engine() -> AsyncIterator[FakeDockerEngine]:
    async with FakeDockerEngine() as fake:
        fake.add_service(NAME, replicas=1, labels=LABELS)
        yield fake


def over_socket(engine: FakeDockerEngine, **overrides: object) -> AutoscalerSettings:
    return AutoscalerSettings.model_validate({"docker_host": f"unix://{engine.socket_path}", **overrides})


# --- the fake answers as the Engine does -----------------------------------------------------


async def test_the_fake_engine_refuses_what_the_engine_refuses(engine: FakeDockerEngine):
    """No `version`: 400; a stale one: 500 with the Engine's body; a spec without its
    container: 400; a spec without labels: accepted, and the labels are gone."""
    async with aiohttp.ClientSession(engine.url) as http:
        async with http.get(f"/v1.44/services/{NAME}") as response:
            current = await response.json()
        url = f"/v1.44/services/{current['ID']}/update"
        spec = current["Spec"]
        async with http.post(url, json=spec) as response:
            assert response.status == 400
            assert "invalid service version ''" in (await response.json())["message"]
        async with http.post(url, params={"version": current["Version"]["Index"] - 1}, json=spec) as response:
            assert response.status == 500
            assert await response.json() == {"message": OUT_OF_SEQUENCE}
        async with http.post(url, params={"version": current["Version"]["Index"]}, json={"Name": NAME}) as response:
            assert response.status == 400
        partial = {key: value for key, value in spec.items() if key != "Labels"}
        async with http.post(url, params={"version": current["Version"]["Index"]}, json=partial) as response:
            assert response.status == 200
        async with http.get(f"/v1.44/services/{NAME}") as response:
            assert (await response.json())["Spec"]["Labels"] == {}


# --- the client -------------------------------------------------------------------------------


async def test_a_service_is_read_over_the_unix_socket_under_the_pinned_version(engine: FakeDockerEngine):
    """The Engine's socket, the API version from the settings in every path."""
    async with engine_api(over_socket(engine)) as api:
        service = await api.inspect(NAME)
    assert (service.name, service.replicas, service.version) == (NAME, 1, engine.service(NAME).version)
    assert service.labels["bulkocr.autoscale"] == "true"
    assert [call.path for call in engine.calls()] == [f"/v1.44/services/{NAME}"]


async def test_scaling_sends_the_whole_spec_back_at_the_version_read(engine: FakeDockerEngine):
    """Only the replica count changes: labels, the task template and the rest survive,
    and the update names the version the spec was read at."""
    before = copy.deepcopy(engine.service(NAME).spec)
    async with engine_api(over_socket(engine)) as api:
        service = await api.inspect(NAME)
        scaled = await api.scale(service, 3)
    assert (scaled.previous, scaled.replicas, scaled.conflicts, scaled.changed) == (1, 3, 0, True)
    (update,) = engine.updates_of(NAME)
    assert update.query == {"version": str(service.version)}
    assert update.path == f"/v1.44/services/{service.id}/update"
    expected = copy.deepcopy(before)
    expected["Mode"]["Replicated"]["Replicas"] = 3
    assert engine.service(NAME).spec == expected
    assert engine.service(NAME).version > service.version


async def test_a_version_conflict_is_read_again_and_retried(engine: FakeDockerEngine):
    """Another writer updates the service just before each of two updates: both are
    refused as out of sequence, the service is read again each time, the third lands."""
    engine.race(2)
    async with engine_api(over_socket(engine), backoff_s=0.01) as api:
        scaled = await api.scale(await api.inspect(NAME), 4)
    assert (scaled.conflicts, scaled.changed) == (2, True)
    assert engine.replicas(NAME) == 4
    assert [call.status for call in engine.calls("update")] == [500, 500, 200]
    routes = [call.route for call in engine.calls()]
    assert routes == ["inspect", "update", "inspect", "update", "inspect", "update"]


async def test_conflicts_beyond_the_attempts_are_raised(engine: FakeDockerEngine):
    """A service that keeps changing under us is not fought for: after the attempts the
    conflict is raised, and the count is left as the other writer left it."""
    engine.race(10)
    async with engine_api(over_socket(engine, update_attempts=3), backoff_s=0.01) as api:
        with pytest.raises(VersionConflict, match="update out of sequence"):
            await api.scale(await api.inspect(NAME), 4)
    assert engine.replicas(NAME) == 1
    assert len(engine.calls("update")) == 3


async def test_a_count_another_writer_already_set_is_not_written_again(engine: FakeDockerEngine):
    """Someone ran `docker service scale` to the same count between our read and our write:
    the write is refused as stale, the service is read again, and nothing more is written."""
    async with engine_api(over_socket(engine), backoff_s=0.01) as api:
        service = await api.inspect(NAME)
        engine.set_replicas(NAME, 3)
        scaled = await api.scale(service, 3)
    assert (scaled.conflicts, scaled.changed) == (1, False)
    assert [call.status for call in engine.calls("update")] == [500]


async def test_engine_errors_are_raised_with_the_engines_words_and_not_retried(engine: FakeDockerEngine):
    """Only a conflict is retried; any other refusal is one `EngineError` with the
    status and the Engine's message."""
    message = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state."
    engine.fail("update", 503, message=message)
    async with engine_api(over_socket(engine), backoff_s=0.01) as api:
        with pytest.raises(EngineError) as raised:
            await api.scale(await api.inspect(NAME), 2)
        with pytest.raises(EngineError, match="404 service nope not found"):
            await api.inspect("nope")
    assert (raised.value.status, raised.value.message) == (503, message)
    assert not isinstance(raised.value, VersionConflict)
    assert len(engine.calls("update")) == 1


async def test_a_slow_engine_times_out(engine: FakeDockerEngine):
    """An Engine that does not answer within the timeout fails the call; it never hangs a round."""
    engine.fail("inspect", delay_s=30)
    async with engine_api(over_socket(engine, docker_timeout_s=0.3)) as api:
        with pytest.raises(TimeoutError):
            await api.inspect(NAME)


async def test_a_version_the_engine_no_longer_speaks_is_refused_with_its_reason(engine: FakeDockerEngine):
    """Docker 29 refuses API versions below 1.44: the error says so, it is not a mystery 400."""
    async with engine_api(over_socket(engine, docker_api_version="1.41")) as api:
        with pytest.raises(EngineError, match=r"client version 1\.41 is too old"):
            await api.inspect(NAME)


async def test_plain_tcp_reaches_a_socket_proxy(engine: FakeDockerEngine):
    """tcp:// without TLS settings is plain HTTP, as to a socket proxy on the overlay network."""
    settings = AutoscalerSettings(docker_host=engine.url.replace("http://", "tcp://"))
    async with engine_api(settings) as api:
        assert (await api.inspect(NAME)).replicas == 1


# --- TLS ---------------------------------------------------------------------------------------


def openssl(*arguments: str | Path) -> None:
    subprocess.run(["openssl", *map(str, arguments)], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, the Engine's certificate for 127.0.0.1 and a client certificate, as
    `dockerd --tlsverify` and DOCKER_CERT_PATH use them."""
    folder = tmp_path_factory.mktemp("certs")
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca: list[str | Path] = ["-CA", folder / "ca.pem", "-CAkey", folder / "ca-key.pem", "-CAcreateserial"]
    ca_extensions = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    openssl(
        "req",
        "-x509",
        *new_key,
        "-keyout",
        folder / "ca-key.pem",
        "-out",
        folder / "ca.pem",
        *ca_extensions,
        "-days",
        "1",
        "-subj",
        "/CN=test CA",
    )
    for name, usage in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("cert", "extendedKeyUsage=clientAuth"),
    ):
        extensions = folder / f"{name}.ext"
        extensions.write_text(f"{usage}\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
        request = folder / f"{name}.csr"
        openssl("req", *new_key, "-keyout", folder / f"{name}-key.pem", "-out", request, "-subj", f"/CN={name}")
        openssl(
            "x509", "-req", "-in", request, *ca, "-out", folder / f"{name}.pem", "-days", "1", "-extfile", extensions
        )
    (folder / "key.pem").write_bytes((folder / "cert-key.pem").read_bytes())
    return folder


@pytest.fixture
async def tls_engine(certificates: Path) -> AsyncIterator[FakeDockerEngine]:
    """The Engine as `dockerd --tlsverify`: only clients with a certificate from the CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certificates / "ca.pem")
    context.load_cert_chain(certificates / "server.pem", certificates / "server-key.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    async with FakeDockerEngine(tls=context) as fake:
        fake.add_service(NAME, replicas=2, labels=LABELS)
        yield fake


def over_tls(engine: FakeDockerEngine, certificates: Path, **overrides: object) -> AutoscalerSettings:
    values: dict[str, object] = {
        "docker_host": engine.url.replace("https://", "tcp://"),
        "docker_tls_ca": certificates / "ca.pem",
        "docker_tls_cert": certificates / "cert.pem",
        "docker_tls_key": certificates / "key.pem",
        **overrides,
    }
    return AutoscalerSettings.model_validate(values)


async def test_tls_with_a_client_certificate_reaches_the_engine(tls_engine: FakeDockerEngine, certificates: Path):
    """tcp:// with the CA, certificate and key: the Engine is verified and lets us scale."""
    async with engine_api(over_tls(tls_engine, certificates)) as api:
        scaled = await api.scale(await api.inspect(NAME), 5)
    assert scaled.changed
    assert tls_engine.replicas(NAME) == 5


async def test_tls_without_our_certificate_or_with_another_ca_is_refused(
    tls_engine: FakeDockerEngine, certificates: Path
):
    """No client certificate: the Engine closes the connection. A CA that did not sign the
    Engine's certificate: we refuse the Engine. Neither reaches a route."""
    without_certificate = over_tls(tls_engine, certificates, docker_tls_cert=None, docker_tls_key=None)
    async with engine_api(without_certificate) as api:
        with pytest.raises(aiohttp.ClientError):
            await api.inspect(NAME)
    wrong_ca = over_tls(tls_engine, certificates, docker_tls_ca=certificates / "cert.pem")
    async with engine_api(wrong_ca) as api:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await api.inspect(NAME)
    assert tls_engine.calls() == []


async def test_engine_api_is_usable_with_a_session_of_its_own(engine: FakeDockerEngine):
    """The client takes any session and base URL: the one the service builds is not special."""
    async with aiohttp.ClientSession() as session:
        api = EngineApi(session, engine.url, "1.52")
        assert (await api.inspect(engine.service(NAME).id[:6])).name == NAME
    assert engine.calls()[0].path.startswith("/v1.52/services/")
