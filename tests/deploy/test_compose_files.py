"""docker-compose.yml and the Dockerfile, read as data: no Docker engine runs here."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from backend.cli import build_parser
from backend.settings import Settings
from glam.checkpoint import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
UI_VARIABLES = set(re.findall(r"GLAMLAB_[A-Z_]+", (ROOT / "ui" / "client.py").read_text()))


def _settings_variables() -> set[str]:
    names = {f"GLAMLAB_{name.upper()}" for name in Settings.model_fields}
    return names | {"DATABASE_URL"}


def test_three_services_with_health_checks_and_ports():
    assert {"db", "api", "ui"} <= set(SERVICES)
    assert SERVICES["db"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(SERVICES["db"]["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in SERVICES["db"]["volumes"])
    assert "pgdata" in COMPOSE["volumes"]
    assert "/readyz" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    assert "/_stcore/health" in " ".join(SERVICES["ui"]["healthcheck"]["test"])
    assert SERVICES["api"]["ports"] == ["8000:8000"]
    assert SERVICES["ui"]["ports"] == ["8501:8501"]


def test_start_order_waits_for_health():
    assert SERVICES["api"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert SERVICES["ui"]["depends_on"] == {"api": {"condition": "service_healthy"}}


def test_gpu_profile_runs_the_api_on_an_nvidia_gpu_with_jax_cuda():
    gpu = SERVICES["api-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["args"]["JAX_EXTRA"].startswith("cuda")
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["environment"] == SERVICES["api"]["environment"]


@pytest.mark.parametrize("service", ["api", "api-gpu"])
def test_every_api_variable_is_a_real_setting(service):
    unknown = set(SERVICES[service]["environment"]) - _settings_variables()
    assert not unknown, f"not settings of backend/settings.py: {unknown}"


def test_every_ui_variable_is_read_by_the_dashboard():
    assert set(SERVICES["ui"]["environment"]) <= UI_VARIABLES
    assert SERVICES["ui"]["environment"]["GLAMLAB_API_URL"] == "http://api:8000"


def test_env_example_covers_what_compose_interpolates():
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    used = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    assert used <= example
    assert example - {"POSTGRES_PASSWORD"} <= _settings_variables()


def _commands(service: dict) -> list[list[str]]:
    command = service["command"]
    if command[:2] == ["sh", "-c"]:
        return [shlex.split(part.replace("exec ", "")) for part in command[2].split("&&")]
    return [command]


@pytest.mark.parametrize("service", ["api", "api-gpu", "ui"])
def test_every_command_is_a_console_script_that_parses(service):
    for argv in _commands(SERVICES[service]):
        assert argv[0] in SCRIPTS, argv
        assert SCRIPTS[argv[0]] == "backend.cli:main"
        build_parser().parse_args(argv[1:])  # exits (fails the test) on a bad command


def test_dockerfile_copies_only_paths_that_exist_and_installs_no_test_tools():
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert "[dev]" not in DOCKERFILE and "pytest" not in DOCKERFILE
    assert (ROOT / "checkpoints" / SHIPPED_MODEL / "final").is_dir()  # the image's model


def test_dependencies_install_before_the_source_and_containers_run_as_non_root():
    for target in ("api", "ui"):
        stage = DOCKERFILE.split(f"AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert "USER glamlab" in stage
    base = DOCKERFILE.split("AS base\n", 1)[1].split("\nFROM ", 1)[0]
    assert "COPY pyproject.toml" in base and "pip install ." in base
    assert "COPY glam" not in base  # the source comes after the dependency layer
    assert "COPY checkpoints checkpoints" in DOCKERFILE.split("AS api\n", 1)[1]
    for service in ("api", "ui"):
        assert SERVICES[service]["build"]["target"] == service
        assert SERVICES[service]["build"]["dockerfile"] == "docker/Dockerfile"
