"""deploy/: compose.yaml validated against the Compose Specification's JSON schema everywhere (the schema that the
check-jsonschema dev dependency ships), by `docker compose config` too where a Compose v2 client exists, and checked
against the code it deploys (every command parses with the real CLI, every FINSENT_ name is a setting, the health
checks ask what the processes serve); monitoring/: the Prometheus rules and the Grafana dashboard name only metrics
the code defines, and promtool checks and unit-tests the rules where it is installed."""

from __future__ import annotations

import ast
import inspect
import json
import re
import shutil
import subprocess
import sys
from importlib import resources
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
MONITORING = DEPLOY / "monitoring"
RULES = MONITORING / "finsent.rules.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
FINSENT_SERVICES = {"migrate", "ingest", "worker", "monitor", "feed", "dashboard"}
LONG_RUNNING = {"ingest", "worker", "monitor"}  # the processes whose metrics port (if any) serves /healthz, /readyz


def compose_client() -> tuple[list[str] | None, str]:
    """A Compose v2 command line ([docker, compose], or docker-compose on PATH or beside the venv's python) or None,
    and why none."""
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


def compose_schema() -> dict:
    """The Compose Specification's JSON schema, as check-jsonschema (a dev dependency, installed by name) ships it."""
    try:
        schema = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    except ModuleNotFoundError:
        pytest.fail("check-jsonschema is not installed: it is a dev dependency (pip install -e '.[dev]')")
    return json.loads(schema.read_text(encoding="utf-8"))


def test_the_compose_file_follows_the_compose_specification(compose):
    from jsonschema.validators import validator_for

    schema = compose_schema()
    validator = validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)
    typo = yaml.safe_load(COMPOSE.read_text())  # the check is not vacuous: a misspelt key is refused
    typo["services"]["worker"]["healthchek"] = typo["services"]["worker"].pop("healthcheck")
    assert any("healthchek" in e.message for e in validator.iter_errors(typo))


def test_docker_compose_config_accepts_the_file():
    command, why = compose_client()
    if command is None:  # the schema test above validates the file everywhere; this adds Compose's own reading
        pytest.skip(f"no Compose v2 client here (the file is checked against the Compose schema instead): {why}")
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
    assert "deploy" not in services["ingest"]  # one ingest: two would poll every feed twice
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
    ingest = resolve(compose["services"]["ingest"]["command"][1:])[1].params
    assert worker["metrics_port"] == monitor["metrics_port"] == 9100
    assert str(monitor["config"]) == "/config/monitor.toml" and str(ingest["sources"]) == "/config/sources.toml"
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


def test_the_image_installs_torch_by_name_first_then_finsent():
    """Pinned torch before the project; the CPU-only index is a build argument, no address is written in the
    repository's build files (the Makefile and the Dockerfile install by package name)."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    torch = dockerfile.index('pip install ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$TORCH"')
    assert "ARG TORCH=torch==2.13.0" in dockerfile and torch < dockerfile.index("pip install -e .")
    for build_file in (DEPLOY / "Dockerfile", REPO / "Makefile", DEPLOY / "compose.yaml"):
        assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", build_file.read_text()), build_file
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)  # not root at run time
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".git", "deploy/.env"} <= set(ignored)
    assert "deploy/config" in ignored  # the desk's files are mounted, never baked into the image


def uncommented(text: str) -> str:
    """A TOML example with its commented-out [[source]] tables switched on."""
    return re.sub(r"^# (?=\[\[source\]\]|\w+ = )", "", text, flags=re.M)


def test_the_desks_files_are_mounted_at_documented_paths(compose, tmp_path):
    from cli.alerts import monitor_config
    from ingest.config import load_sources

    for name in FINSENT_SERVICES:
        mount = compose["services"][name]["volumes"][0]
        assert {"type": "bind", "source": "./config", "target": "/config", "read_only": True}.items() <= mount.items()
        assert mount["bind"]["create_host_path"] is False, name  # a missing folder is an error, not made by root
    assert "/app/" not in COMPOSE.read_text()  # nothing is mounted over the image's own files any more
    assert (DEPLOY / "config" / ".gitignore").is_file()  # the folder is in every clone; what the desk puts there is not
    assert compose["services"]["worker"]["environment"]["FINSENT_ENTITIES_FILE"] == "${FINSENT_ENTITIES_FILE:-}"
    # The files the documented first steps copy into ./config are valid for the commands that read them.
    assert monitor_config(REPO / "monitor.example.toml").receivers
    example = DEPLOY / "sources.example.toml"
    assert load_sources(example) == []  # as shipped: no source, the ingest waits
    switched_on = tmp_path / "sources.toml"
    switched_on.write_text(uncommented(example.read_text()))
    assert {s.kind for s in load_sources(switched_on)} == {"rss", "file"}
    steps = COMPOSE.read_text() + (REPO / "docs" / "operations.md").read_text()
    for step in ("cp ../monitor.example.toml config/monitor.toml", "cp sources.example.toml config/sources.toml"):
        assert step in steps


def healthcheck_url(service: dict) -> str:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    found = re.findall(r"http://127\.0\.0\.1:\d+/\w+", test[3])
    assert len(found) == 1, test
    return found[0]


def test_health_checks_ask_for_readiness_where_the_process_checks_it(compose):
    """A process whose command passes readiness checks to its metrics server is checked on /readyz, any other on
    /healthz (its /readyz would answer 200 with nothing checked); a command with no metrics port has no check."""
    for name in LONG_RUNNING:
        service = compose["services"][name]
        leaf, ctx = resolve(service["command"][1:])
        source = inspect.getsource(inspect.unwrap(leaf.callback))
        if "metrics_port" not in ctx.params:
            assert "healthcheck" not in service, f"{name}: nothing serves /healthz or /readyz in its container"
            continue
        assert ctx.params["metrics_port"] == 9100, f"{name}: pass --metrics-port 9100 and health-check it"
        path = "/readyz" if "readiness(" in source else "/healthz"
        assert healthcheck_url(service) == f"http://127.0.0.1:9100{path}", name
    assert healthcheck_url(compose["services"]["monitor"]).endswith("/readyz")  # today's state, said in the docs
    assert healthcheck_url(compose["services"]["feed"]) == "http://127.0.0.1:8080/healthz"


def test_the_readyz_health_check_fails_on_a_failing_check_and_says_which(compose):
    """The monitor's health-check command, run against a real metrics server (core.metrics.serve_metrics)."""
    from prometheus_client import CollectorRegistry

    from core.metrics import serve_metrics

    problem: dict[str, str | None] = {"database": "OperationalError: connection refused"}
    server = serve_metrics(0, registry=CollectorRegistry(), checks={"database": lambda: problem["database"]})
    try:
        port = server.server_address[1]
        code = compose["services"]["monitor"]["healthcheck"]["test"][3].replace(":9100/", f":{port}/")
        run = [sys.executable, "-c", code]
        failing = subprocess.run(run, capture_output=True, text=True, timeout=30)
        assert failing.returncode != 0 and "connection refused" in failing.stderr, failing
        problem["database"] = None
        assert subprocess.run(run, capture_output=True, text=True, timeout=30).returncode == 0
    finally:
        server.shutdown()
        server.server_close()


def defined_metrics() -> dict[str, tuple[str, list[str]]]:
    """Every finsent_* metric the code defines: {name: (Counter|Gauge|Histogram|Summary, label names)}, read from the
    prometheus_client constructor calls in the packages (tests and benchmarks excluded)."""
    found: dict[str, tuple[str, list[str]]] = {}
    kinds = {"Counter", "Gauge", "Histogram", "Summary"}
    for path in REPO.glob("*/**/*.py"):
        if path.relative_to(REPO).parts[0] in {".venv", "tests", "bench", "build"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in kinds):
                continue
            args = node.args
            if not (args and isinstance(args[0], ast.Constant) and str(args[0].value).startswith("finsent_")):
                continue
            given = [kw.value for kw in node.keywords if kw.arg == "labelnames"] + args[2:3]
            labels = given[0] if given else None
            names = [e.value for e in labels.elts] if isinstance(labels, (ast.List, ast.Tuple)) else []
            found[args[0].value] = (getattr(node.func, "id", getattr(node.func, "attr", "")), names)
    return found


def series_names(defined: dict[str, tuple[str, list[str]]]) -> dict[str, list[str]]:
    """The series names Prometheus sees for each metric, as prometheus_client exposes them: {series: labels}."""
    suffixes = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count"),
                "Summary": ("_sum", "_count")}  # fmt: skip
    out = {}
    for name, (kind, labels) in defined.items():
        base = name.removesuffix("_total") if kind == "Counter" else name
        for suffix in suffixes[kind]:
            out[base + suffix] = labels + (["le"] if suffix == "_bucket" else [])
    return out


def monitoring_expressions() -> dict[str, str]:
    """Every PromQL expression of the rules and the dashboard: {where: expression}."""
    exprs = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            exprs[f"rules: {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            exprs[f"dashboard: {panel['title']} {target['refId']}"] = target["expr"]
    return exprs


def test_the_rules_and_the_dashboard_use_only_metrics_the_code_defines():
    import promql_parser  # a dev dependency: PromQL's grammar, so a query that Prometheus would refuse fails here

    defined = defined_metrics()
    assert {"finsent_last_batch_timestamp_seconds", "finsent_consumer_lag", "finsent_rejects_total",
            "finsent_notification_failures_total", "finsent_feed_requests_total"} <= set(defined)  # fmt: skip
    series = series_names(defined)
    known_labels = {label for labels in series.values() for label in labels} | {"job", "instance"}
    used = set()
    for where, expr in monitoring_expressions().items():
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            pytest.fail(f"{where}: not PromQL: {exc}: {expr!r}")
        names = set(re.findall(r"\bfinsent_\w+", expr))
        assert names or re.match(r"(count\()?up\{", expr), f"{where}: no finsent metric in {expr!r}"  # up: Prometheus
        for name in names:
            assert name in series, f"{where}: {name} is defined nowhere in the code (known: {sorted(series)})"
        labels = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) + re.findall(r"\{([^}]*)\}", expr)
        for group in labels:
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=|,|$)", group):
                if not label.startswith("$"):  # a Grafana legend like {{topic}} is in legendFormat, not here
                    assert label in known_labels, f"{where}: label {label!r} is on no finsent metric"
        used |= names
    covered = {name for name in series if name in used}
    for essential in ("finsent_last_batch_timestamp_seconds", "finsent_consumer_lag", "finsent_items_rejected_total",
                      "finsent_notifications_failed", "finsent_notification_failures_total"):  # fmt: skip
        assert essential in covered, f"neither the rules nor the dashboard use {essential}"


def test_the_rules_file_has_the_prometheus_rule_group_shape():
    rules = yaml.safe_load(RULES.read_text())
    assert set(rules) == {"groups"} and rules["groups"]
    names = [g["name"] for g in rules["groups"]]
    assert len(names) == len(set(names))
    alerts = set()
    for group in rules["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules", "labels"} and group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert ("alert" in rule) != ("record" in rule) and isinstance(rule["expr"], str), rule
            if "for" in rule:
                assert re.fullmatch(r"(\d+[smhdwy])+", rule["for"]), rule
            assert all(isinstance(v, str) for v in {**rule.get("labels", {}), **rule.get("annotations", {})}.values())
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"]
                alerts.add(rule["alert"])
    for wanted in ("FinsentLastBatchStale", "FinsentConsumerLagGrowing", "FinsentRejectsHigh",
                   "FinsentNotificationDeliveryFailing"):  # fmt: skip
        assert wanted in alerts
    scrape = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert scrape["rule_files"] == [RULES.name]
    jobs = {job["job_name"] for job in scrape["scrape_configs"]}
    for where, expr in monitoring_expressions().items():
        for job in re.findall(r'job=~?"([^"]+)"', expr):
            assert any(re.fullmatch(job, j) for j in jobs), f"{where}: no job of prometheus.yml is {job!r}"
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and {v["name"] for v in dashboard["templating"]["list"]} == {"datasource"}
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"] if p["type"] != "row")


def test_promtool_checks_and_unit_tests_the_rules(tmp_path):
    """promtool parses the rules and every dashboard query as Prometheus does, checks prometheus.yml, and runs the
    rules' unit tests (finsent.rules.test.yml): do the alerts fire on the series they are meant for, and only then."""
    promtool = shutil.which("promtool")
    if promtool is None:  # Debian's only promtool comes in its `prometheus` package, which starts a server: not forced
        pytest.skip(
            "no promtool on PATH (Debian: apt-get install prometheus): the rules' unit tests do not run here; their "
            "shape, metric names and PromQL syntax are still checked (test_the_rules_and_the_dashboard_...)"
        )
    queries = tmp_path / "dashboard.rules.yml"  # every dashboard query as a recording rule: promtool parses each
    records = [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(monitoring_expressions().values())]
    queries.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    for args in (["check", "rules", str(RULES), str(queries)], ["test", "rules", "finsent.rules.test.yml"]):
        out = subprocess.run([promtool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
    config = subprocess.run([promtool, "check", "config", "--syntax-only", "prometheus.yml"], cwd=MONITORING,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert config.returncode == 0, config.stdout + config.stderr
