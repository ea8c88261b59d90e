"""`glamlab ui`: the streamlit command line it runs."""

from __future__ import annotations

import sys

import pytest

from ui import cli


def test_the_command_runs_the_dashboard_headless_on_the_port():
    command = cli.streamlit_command(8765, "0.0.0.0")
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert command[4] == str(cli.APP) and cli.APP.is_file()
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options["--server.port"] == "8765"
    assert options["--server.address"] == "0.0.0.0"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"
    assert options["--client.showErrorDetails"] == "none"  # users never see tracebacks


def test_main_replaces_itself_with_streamlit_and_passes_the_api_url(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda *args: calls.append(args))
    monkeypatch.setenv("GLAMLAB_API_KEY", "k")
    cli.main(["--port", "9001", "--api-url", "http://api:8000"])
    [(path, argv, env)] = calls
    assert path == sys.executable and argv == cli.streamlit_command(9001, "127.0.0.1")
    assert env["GLAMLAB_API_URL"] == "http://api:8000" and env["GLAMLAB_API_KEY"] == "k"
    assert "http://127.0.0.1:9001" in capsys.readouterr().out


def test_a_bad_port_is_a_usage_error():
    with pytest.raises(SystemExit) as caught:
        cli.main(["--port", "eighty"])
    assert caught.value.code == 2
