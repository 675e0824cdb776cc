"""docker-compose.yml against the code (docker cannot run here): every command is a CLI command
that accepts its options, every variable is a setting, every dependency and profile holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from core.settings import Settings
from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
LIBRARY_VARIABLES = {"HF_HUB_OFFLINE"}  # read by huggingface_hub, not by Settings
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")
ANY_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


def ours(compose: dict) -> dict[str, dict]:
    """The services that run the EmbedTune image (the others are postgres and redis)."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if str(svc.get("image", "")).startswith("embedtune:")
    }


def setting_variables() -> set[str]:
    """Every environment variable ``Settings`` reads (prefixed names and aliases)."""
    names = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        names |= set(alias.choices) if alias is not None else {f"EMBEDTUNE_{name.upper()}"}
    return names


def example_env() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text("utf-8").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def substitute(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` with ``env``."""

    def one(match: re.Match) -> str:
        name, rest = match.group(1), match.group(0)[len(match.group(1)) + 2 : -1]
        if name in env:
            return env[name]
        assert not rest.startswith((":?", "?")), f"{name} is required and has no value"
        return rest.lstrip(":-")

    return ANY_VARIABLE.sub(one, value)


def test_every_command_is_a_cli_command_that_accepts_its_options(compose: dict) -> None:
    import typer

    from cli.main import app

    group = typer.main.get_command(app)
    for name, svc in ours(compose).items():
        program, command, *args = svc["command"]
        assert program == "embedtune", name
        assert command in group.commands, f"{name}: no CLI command '{command}'"
        group.commands[command].make_context(command, list(args))  # raises on a bad option


def test_every_variable_is_a_known_setting_and_the_stack_starts_in_production(
    compose: dict,
) -> None:
    known = setting_variables() | LIBRARY_VARIABLES
    env = example_env()
    real = {**env, "POSTGRES_PASSWORD": "s3cr3t-pg-7f2a", "REDIS_PASSWORD": "s3cr3t-rd-9c1b"}
    for name, svc in ours(compose).items():
        environment = svc["environment"]
        unknown = set(environment) - known
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
        settings = Settings(
            _env_file=None, **{k: substitute(str(v), real) for k, v in _as_fields(environment)}
        )
        assert settings.environment == "production"
        assert settings.db_url.startswith("postgresql+psycopg://embedtune:s3cr3t-pg")
        with pytest.raises(ValueError, match="placeholder"):  # .env.example as it is: refused
            Settings(
                _env_file=None, **{k: substitute(str(v), env) for k, v in _as_fields(environment)}
            )


def _as_fields(environment: dict) -> list[tuple[str, object]]:
    """Compose variables as ``Settings`` field names (library variables left out)."""
    by_variable = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        for variable in alias.choices if alias is not None else [f"EMBEDTUNE_{field.upper()}"]:
            by_variable[variable] = field
    return [(by_variable[k], v) for k, v in environment.items() if k in by_variable]


def test_env_example_sets_every_required_variable_and_each_profile() -> None:
    required = set(REQUIRED.findall(COMPOSE.read_text("utf-8")))
    env = example_env()
    assert required <= set(env), f"missing from .env.example: {required - set(env)}"
    assert env["COMPOSE_PROFILES"] in ("cpu", "gpu")


def test_dependencies_exist_and_their_conditions_can_be_met(compose: dict) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep, how in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on a missing service {dep}"
            target = services[dep]
            assert not target.get("profiles"), f"{name} depends on {dep}, which is optional"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in target, f"{dep} has no healthcheck for {name}"
            if how["condition"] == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dep} must be a one-shot"


def test_api_healthcheck_probes_readiness_on_its_own_port(compose: dict) -> None:
    api = compose["services"]["api"]
    port = api["command"][api["command"].index("--port") + 1]
    probe = " ".join(api["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in probe


def test_one_reconciler_and_a_worker_for_each_kind_of_host(compose: dict) -> None:
    services = ours(compose)
    reconcilers = [n for n, s in services.items() if s["command"][1] == "reconciler"]
    assert reconcilers == ["reconciler"]
    assert "replicas" not in (services["reconciler"].get("deploy") or {})
    workers = {n: s for n, s in services.items() if s["command"][1] == "worker"}
    by_profile = {tuple(s["profiles"]): s for s in workers.values()}
    assert set(by_profile) == {("cpu",), ("gpu",)}
    cpu, gpu = by_profile[("cpu",)], by_profile[("gpu",)]
    assert "deploy" not in cpu and cpu["build"]["dockerfile"] == "Dockerfile.cpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["build"]["dockerfile"] == "Dockerfile.gpu" and devices[0]["count"] == "all"
    for name, svc in services.items():  # only the GPU worker is tied to NVIDIA hosts
        if svc is not gpu:
            assert svc["build"]["dockerfile"] == "Dockerfile.cpu", name


@pytest.mark.parametrize(
    ("dockerfile", "torch_index", "faiss"),
    [
        ("Dockerfile.cpu", "whl/cpu", "faiss-cpu"),
        ("Dockerfile.gpu", "whl/cu", "faiss-gpu"),
    ],
)
def test_images_install_the_torch_and_faiss_builds_of_their_host(
    dockerfile: str, torch_index: str, faiss: str
) -> None:
    text = (REPO / dockerfile).read_text("utf-8")
    assert "torch==2.13.0" in text and torch_index in text
    for copied in ("core", "api", "workers", "cli", "migrations"):
        assert f"COPY {copied} {copied}" in text and Path(REPO / copied).is_dir()
    if faiss == "faiss-cpu":  # the base dependency; nothing swaps it out
        assert "faiss-gpu" not in text and "[gpu]" not in text
    else:
        assert "uninstall -y faiss-cpu" in text
