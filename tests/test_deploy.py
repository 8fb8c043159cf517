"""deploy/compose.yaml: validated by `docker compose config` where a Compose v2 client exists, and everywhere
checked against the code it deploys (every command parses with the real CLI, every FINSENT_ name is a setting)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from cli import app
from core.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
FINSENT_SERVICES = {"migrate", "worker", "monitor", "feed", "dashboard"}


def compose_client() -> tuple[list[str] | None, str]:
    """A Compose v2 command line ([docker, compose], or docker-compose on PATH or in the venv, where `make compose`
    puts it) or None, and why none."""
    tried = []
    beside = Path(sys.executable).parent / "docker-compose"
    for command in (["docker", "compose"], ["docker-compose"], [str(beside)]):
        if shutil.which(command[0]) is None:
            tried.append(f"no {command[0]} on PATH")
            continue
        probe = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, timeout=60)
        version = probe.stdout.strip().lstrip("v")
        if probe.returncode != 0:
            reason = (probe.stderr.strip() or "error").splitlines()[0][:80]
            tried.append(f"`{' '.join(command)}` is not available ({reason})")
        elif not version[:1].isdigit() or int(version.split(".")[0]) < 2:
            tried.append(f"`{' '.join(command)}` is Compose {version or '?'}, not v2 (the Compose Specification)")
        else:
            return command, ""
    return None, "; ".join(tried)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # PyYAML resolves the x-finsent anchors and << merges as Compose does


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^[A-Z_]+=", line))
    return {k: v for k, v in pairs}


def test_docker_compose_config_accepts_the_file():
    command, why = compose_client()
    if command is None:
        pytest.skip(f"no Compose v2 client here: {why}")
    out = subprocess.run(
        [
            *command,
            "--project-directory",
            str(DEPLOY),
            "-f",
            str(COMPOSE),
            "--env-file",
            str(ENV_EXAMPLE),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


def test_the_services_are_all_there(compose):
    services = compose["services"]
    assert set(services) == {"kafka", "postgres"} | FINSENT_SERVICES
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka  # KRaft
    assert not any("zookeeper" in str(v).lower() for v in kafka.values())
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "container_name" not in services["worker"]  # a fixed name would forbid more than one replica
    assert "ports" not in services["worker"]  # replicas cannot share a host port; metrics are scraped in-network
    for name in ("kafka", "postgres", "worker", "monitor", "feed", "dashboard"):
        assert "test" in services[name].get("healthcheck", {}), f"{name} has no healthcheck"
    for name in FINSENT_SERVICES - {"migrate"}:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("feed", "dashboard", "kafka"):  # published on the host's loopback only
        assert all(str(p).startswith("127.0.0.1:") for p in services[name]["ports"]), name


def resolve(args: list[str]) -> tuple[Any, Any]:
    """The leaf command of `finsent ARGS`, and its context: options parsed and converted, nothing run."""
    command = typer.main.get_command(app)  # a (Typer-vendored) click group
    args = list(args)
    while hasattr(command, "commands"):
        assert args, "a group without a subcommand"
        name = args.pop(0)
        assert name in command.commands, f"no command {name!r} in `{command.name}`"
        command = command.commands[name]
    return command, command.make_context(command.name or "finsent", args)


def test_every_command_is_a_real_finsent_command(compose):
    from typer.testing import CliRunner

    runner = CliRunner()
    for wrong in (["score", "--no-such-option"], ["feed", "serve", "--port", "eighty"], ["monitor"], ["nope"]):
        with pytest.raises((AssertionError, Exception)):  # the check is not vacuous: each of these is refused
            resolve(wrong)
    for name in FINSENT_SERVICES:
        service = compose["services"][name]
        assert service["image"] == "finsent:latest" and service["build"]["dockerfile"] == "deploy/Dockerfile"
        command = service["command"]
        assert command[0] == "finsent", f"{name}: {command}"
        _leaf, ctx = resolve(command[1:])  # unknown options, bad values and missing required ones raise here
        assert ctx.params, name
        shown = runner.invoke(app, [*command[1:], "--help"])
        assert shown.exit_code == 0, f"{name}: {shown.output}"
    worker = resolve(compose["services"]["worker"]["command"][1:])[1].params
    monitor = resolve(compose["services"]["monitor"]["command"][1:])[1].params
    feed = resolve(compose["services"]["feed"]["command"][1:])[1].params
    assert worker["metrics_port"] == monitor["metrics_port"] == 9100
    assert (REPO / monitor["config"].relative_to("/app")).is_file()  # the image holds the repo at /app
    assert feed["host"] == "0.0.0.0" and feed["token_env"] == "FINSENT_FEED_TOKEN"
    assert "FINSENT_FEED_TOKEN" in compose["services"]["feed"]["environment"]


def test_environment_names_are_settings_and_secrets_come_from_env(compose):
    fields = set(Settings.model_fields)
    example = env_example()
    text = COMPOSE.read_text()
    for name in FINSENT_SERVICES:
        service = compose["services"][name]
        for key, value in service["environment"].items():
            assert key.startswith("FINSENT_"), f"{name}: {key}"
            known = key.removeprefix("FINSENT_").lower() in fields
            assert known or key in service["command"] or key in example, f"{name}: {key} is no setting"
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert str(value).startswith("${"), f"{name}: {key} has a literal value"
        url = service["environment"]["FINSENT_DATABASE_URL"]
        assert "${POSTGRES_PASSWORD:?" in url and url.startswith("postgresql://")
        assert service["environment"]["FINSENT_TRANSPORT"] == "kafka"
        assert service["environment"]["FINSENT_METRICS_HOST"] == "0.0.0.0"
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    for key in example:  # every variable the example offers is used, and every required one is offered
        assert "${" + key in text, f"{key} in .env.example is not used by compose.yaml"
    for key in re.findall(r"\$\{(\w+):\?", text):
        assert key in example, f"{key} is required by compose.yaml but missing from .env.example"
    assert "/deploy/.env" in (REPO / ".gitignore").read_text()


def test_the_image_installs_cpu_torch_first_then_finsent():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    torch = dockerfile.index("https://download.pytorch.org/whl/cpu")
    assert "torch==2.13.0" in dockerfile and torch < dockerfile.index("pip install -e .")
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)  # not root at run time
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".git", "deploy/.env"} <= set(ignored)
