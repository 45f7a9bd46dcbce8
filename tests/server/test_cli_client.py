"""`skymesh` client commands against a real server: TLS verified against a CA file, the token from a file or the
environment, and every failure a user can cause reported as one line with a hint, never a traceback."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from pathlib import Path

import pytest

from skymesh.cli.main import main
from tests.server.conftest import StartServer


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and localhost, made by openssl (key, cert)."""
    key, cert = directory / "server.key", directory / "server.crt"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


async def _cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_status_over_tls_with_a_token_file(
    start_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, cert = await asyncio.to_thread(_self_signed, tmp_path)
    server = await start_server(control_auth=True, tls_cert_file=str(cert), tls_key_file=str(key))
    token_file = str(server.config.admin_token_path)
    address = server.address

    assert await _cli("status", "--server", address, "--ca-cert", str(cert), "--token-file", token_file, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stations"] == [] and report["jobs_by_state"] == {}

    monkeypatch.setenv("SKYMESH_TOKEN_FILE", token_file)  # the environment names the file just as well
    monkeypatch.setenv("SKYMESH_SERVER", address)
    assert await _cli("status", "--ca-cert", str(cert), "--json") == 0
    capsys.readouterr()

    # Plain text to a TLS server, TLS against the wrong roots: unavailable, said in one line with a hint.
    for extra in ((), ("--tls",)):
        assert await _cli("status", "--timeout", "5", *extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("skymesh: error: UNAVAILABLE: ") and "hint: " in err and "Traceback" not in err

    monkeypatch.setenv("SKYMESH_TOKEN", "smu_0000_not-a-token")  # a token given directly wins over the file
    assert await _cli("status", "--ca-cert", str(cert)) == 2
    err = capsys.readouterr().err
    assert err.startswith("skymesh: error: UNAUTHENTICATED: invalid or revoked token") and "--token-file" in err

    assert await _cli("status", "--ca-cert", str(tmp_path / "missing.pem")) == 2
    assert capsys.readouterr().err.startswith("skymesh: error: --ca-cert: cannot read ")
    monkeypatch.delenv("SKYMESH_TOKEN")
    (tmp_path / "empty.token").write_text("\n")
    assert await _cli("status", "--ca-cert", str(cert), "--token-file", str(tmp_path / "empty.token")) == 2
    assert capsys.readouterr().err.startswith("skymesh: error: --token-file: ")


def test_bad_config_files_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skymesh: error: ") and "No such file" in err and "Traceback" not in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("listen: [unclosed\n")
    assert main(["keys", "--config", str(broken), "token", "admin"]) == 2
    assert capsys.readouterr().err.startswith("skymesh: error: not valid YAML: ")


def test_a_busy_port_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        assert main(["server", "--listen", address, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"skymesh: error: listen: cannot listen on {address}") and "Traceback" not in err


async def test_users_command_hands_out_named_tokens(
    start_server: StartServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await start_server(control_auth=True)
    admin = ("--server", server.address, "--token-file", str(server.config.admin_token_path))
    assert await _cli("users", *admin, "create", "otto", "--role", "observer") == 0
    out = capsys.readouterr().out.splitlines()
    token_id, token = out[0].removeprefix("token_id: "), out[1].removeprefix("token: ")
    assert token.startswith(f"smu_{token_id}_")
    assert await _cli("status", "--server", server.address, "--token", token, "--json") == 0
    capsys.readouterr()
    assert await _cli("users", "--server", server.address, "--token", token, "list") == 2  # an observer may not
    assert "PERMISSION_DENIED: ListUsers needs role admin" in capsys.readouterr().err
    assert await _cli("users", *admin, "revoke", token_id) == 0
    assert capsys.readouterr().out.strip() == f"revoked {token_id} (user otto)"
    assert await _cli("users", *admin, "list") == 0
    listing = capsys.readouterr().out
    assert f"token {token_id}" in listing and "revoked" in listing and token.split("_", 2)[2] not in listing
    assert await _cli("status", "--server", server.address, "--token", token) == 2
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    assert await _cli("users", *admin, "create", "Otto", "--role", "admin") == 2
    assert capsys.readouterr().err.startswith("skymesh: error: INVALID_ARGUMENT: user_id: must be 1-63 lowercase")
