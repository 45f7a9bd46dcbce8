"""Mutual TLS (`tls_client_ca_file`): every caller shows a certificate from the station CA, and an agent's names its
station. Real certificates made by openssl, real gRPC over loopback, the real agent's stream client."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import grpc
import pytest

from skymesh.agent.config import load_config
from skymesh.agent.runtime import Agent
from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.channel import TlsOptions, control_channel
from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from tests.agent.conftest import running
from tests.server.conftest import StartServer, add_station

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _pki(d: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1, and client certificates for gs-1, gs-2 and an operator."""
    _openssl("req", "-x509", *_EC, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), "-days", "1",
             "-subj", "/CN=skymesh-test-ca")  # fmt: skip
    out = {"ca": d / "ca.crt"}
    for name, ext in (
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ("gs-1", "subjectAltName=DNS:gs-1"),
        ("gs-2", "subjectAltName=DNS:gs-2"),
        ("ops", "subjectAltName=DNS:ops"),
    ):
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", *_EC, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
                 "-subj", f"/CN={name}")  # fmt: skip
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / f"{name}.crt"), "-days", "1",
                 "-extfile", str(d / f"{name}.ext"))  # fmt: skip
        out[name] = d / f"{name}.crt"
    return out


def _tls(d: Path, client: str | None) -> TlsOptions:
    return TlsOptions(
        root_certificates=(d / "ca.crt").read_bytes(),
        certificate_chain=(d / f"{client}.crt").read_bytes() if client else None,
        private_key=(d / f"{client}.key").read_bytes() if client else None,
    )


async def _hello(address: str, key: str, tls: TlsOptions, station_id: str = "gs-1") -> grpc.StatusCode:
    async with control_channel(address, tls=tls) as channel:
        call = agent_pb2_grpc.AgentServiceStub(channel).Connect(
            metadata=(("authorization", f"Bearer {key}"),), timeout=10
        )
        hello = agent_pb2.Hello(station_id=station_id, agent_version="test", boot_id="boot-1", protocol_version=1)
        try:
            await call.write(agent_pb2.ConnectRequest(hello=hello))
            first = await call.read()
            call.cancel()
            assert first.WhichOneof("body") == "welcome"
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            return exc.code()


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    d.mkdir()
    _pki(d)
    return d


async def test_station_certificate_must_name_the_station_of_its_key(start_server: StartServer, pki: Path) -> None:
    server = await start_server(
        tls_cert_file=str(pki / "server.crt"),
        tls_key_file=str(pki / "server.key"),
        tls_client_ca_file=str(pki / "ca.crt"),
    )
    key = await add_station(server, "gs-1")
    assert await _hello(server.address, key, _tls(pki, "gs-1")) == grpc.StatusCode.OK
    # gs-1's key with gs-2's certificate: a stolen key is no use without its station's certificate.
    assert await _hello(server.address, key, _tls(pki, "gs-2")) == grpc.StatusCode.PERMISSION_DENIED
    # No client certificate at all: the TLS handshake itself is refused.
    assert await _hello(server.address, key, _tls(pki, None)) == grpc.StatusCode.UNAVAILABLE
    # Control clients show a certificate too (any from the CA), then their token as usual.
    async with control_channel(server.address, tls=_tls(pki, "ops")) as channel:
        got = await stations_pb2_grpc.StationServiceStub(channel).GetStation(
            stations_pb2.GetStationRequest(station_id="gs-1"), timeout=10
        )
        assert got.station.station_id == "gs-1"


async def test_real_agent_connects_with_its_certificate(start_server: StartServer, pki: Path, tmp_path: Path) -> None:
    server = await start_server(
        tls_cert_file=str(pki / "server.crt"),
        tls_key_file=str(pki / "server.key"),
        tls_client_ca_file=str(pki / "ca.crt"),
    )
    key = await add_station(server, "gs-1")
    yaml_path = tmp_path / "agent.yaml"
    yaml_path.write_text(
        f"station_id: gs-1\nserver_address: {server.address}\napi_key: {key}\nstate_dir: {tmp_path / 'state'}\n"
        f"tls_ca_file: {pki / 'ca.crt'}\ntls_cert_file: {pki / 'gs-1.crt'}\ntls_key_file: {pki / 'gs-1.key'}\n"
    )
    config = load_config(yaml_path)
    assert config.tls_cert_file == pki / "gs-1.crt"
    agent = Agent(config)
    async with running(agent):
        for _ in range(200):
            if agent.link is not None and agent.link.connected.is_set():
                break
            await asyncio.sleep(0.1)
        assert agent.link is not None and agent.link.connected.is_set(), "the agent never got its Welcome over mTLS"
