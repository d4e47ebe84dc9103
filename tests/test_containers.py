"""Dockerfile and docker-compose.yml: ``docker compose config`` validates the compose file where
the docker CLI and its compose plugin are installed (skipped, saying so, where they are not);
the checks below it need neither and always run."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ticketing.settings import ENVIRONMENT_SETTINGS

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
SECRETS = {
    "TICKETING_API_KEYS": "key-one key-two",
    "TICKETING_TICKET_SECRET": "compose-ticket-secret",
    "STRIPE_SECRET_KEY": "sk_test_compose",
    "STRIPE_WEBHOOK_SECRET": "whsec_compose",
    "MAIL_HOST": "smtp.example.com",
    "MAIL_DEFAULT_SENDER": "Tickets <tickets@example.com>",
}
PRODUCTION_VARIABLES = {
    "DATABASE_URL",
    "TICKETING_API_KEYS",
    "TICKETING_TICKET_SECRET",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "MAIL_HOST",
    "MAIL_DEFAULT_SENDER",
    "RATELIMIT_STORAGE_URL",
}


def docker_compose():
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed")
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip(
            "the docker CLI has no compose plugin (`docker compose version` failed: "
            f"{(probe.stderr or probe.stdout).strip()[:200]})"
        )
    return ["docker", "compose", "--file", str(COMPOSE_FILE)]


def compose_env(**variables):
    # Only what compose needs: nothing from this machine's environment leaks into the check.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    env.update(variables)
    return env


def test_docker_compose_config_validates():
    command = docker_compose()
    result = subprocess.run(
        [*command, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=compose_env(**SECRETS),
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert '"ticketing_worker"' in result.stdout

    missing = subprocess.run(
        [*command, "config", "--quiet"],
        capture_output=True,
        text=True,
        env=compose_env(),
        timeout=60,
        cwd=REPO,
    )
    assert missing.returncode != 0
    assert any(secret in missing.stderr for secret in SECRETS), missing.stderr


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_runs_the_api_the_worker_and_a_migration_on_postgres_and_redis(compose):
    services = compose["services"]
    assert set(services) == {"api", "worker", "migrate", "postgres", "redis"}
    assert services["api"]["command"] == ["gunicorn", "--paste", "production.ini"]
    assert services["worker"]["command"] == ["ticketing_worker", "production.ini"]
    assert services["migrate"]["command"] == ["initialize_ticketing_db", "production.ini"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["redis"] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert "6543" in services["api"]["ports"][0]


def test_compose_sets_every_production_variable(compose):
    for name in ("api", "worker", "migrate"):
        environment = compose["services"][name]["environment"]
        assert PRODUCTION_VARIABLES <= set(environment), name
        # Each is one the app reads (no typo goes unnoticed) or a gunicorn setting.
        assert set(environment) <= set(ENVIRONMENT_SETTINGS) | {
            "WEB_CONCURRENCY",
            "GUNICORN_THREADS",
        }
        assert environment["DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in environment["DATABASE_URL"]
        assert environment["RATELIMIT_STORAGE_URL"].startswith("redis://redis:")
        # Secrets have no default: compose refuses to start without them.
        for secret in SECRETS:
            assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", environment[secret]), secret


def test_the_dockerfile_installs_the_package_and_serves_with_gunicorn():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert "pip install ." in dockerfile
    assert 'CMD ["gunicorn", "--paste", "production.ini"]' in dockerfile
    assert "COPY production.ini gunicorn.conf.py ./" in dockerfile
    # The console scripts compose runs are the package's own.
    setup = (REPO / "setup.py").read_text()
    for script in ("initialize_ticketing_db", "ticketing_worker"):
        assert f'"{script} = ' in setup, script
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "*.sqlite"} <= set(ignored)
