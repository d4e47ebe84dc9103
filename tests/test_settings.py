"""Settings from the environment: ``DATABASE_URL`` wins over the ini in every entry point, and
production refuses to start without it."""

from pathlib import Path

import pytest
from pyramid.exceptions import ConfigurationError
from pyramid.paster import get_appsettings

from ticketing import main
from ticketing.models import normalize_database_url
from ticketing.settings import apply_environment, as_bool, as_int, require

REPO = Path(__file__).resolve().parent.parent


# --- apply_environment ----------------------------------------------------------------------------


def test_database_url_overrides_the_ini():
    settings = {"sqlalchemy.url": "sqlite:///from-ini.sqlite", "other": "kept"}
    result = apply_environment(settings, {"DATABASE_URL": "postgresql://u@h/db"})
    assert result is settings
    assert settings == {"sqlalchemy.url": "postgresql://u@h/db", "other": "kept"}


def test_database_url_fills_a_missing_setting():
    assert apply_environment({}, {"DATABASE_URL": "sqlite:///x.sqlite"}) == {
        "sqlalchemy.url": "sqlite:///x.sqlite"
    }


@pytest.mark.parametrize("environ", [{}, {"DATABASE_URL": ""}, {"UNRELATED": "postgres://x"}])
def test_without_database_url_the_ini_stands(environ):
    settings = {"sqlalchemy.url": "sqlite:///from-ini.sqlite"}
    assert apply_environment(settings, environ) == {"sqlalchemy.url": "sqlite:///from-ini.sqlite"}


def test_the_app_uses_database_url_over_its_settings(monkeypatch, tmp_path):
    target = tmp_path / "from-env.sqlite"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{target}")
    app = main(
        {},
        **{
            "sqlalchemy.url": f"sqlite:///{tmp_path / 'from-ini.sqlite'}",
            "ticketing.require_api_key": "false",
            "ticketing.ticket_secret": "test-ticket-secret",
        },
    )
    try:
        engine = app.registry["dbengine"]
        assert engine.url.database == str(target)
        assert app.registry.settings["sqlalchemy.url"] == f"sqlite:///{target}"
    finally:
        app.registry["dbengine"].dispose()


def test_the_app_normalizes_a_postgres_database_url(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://user:secret@db.example:5432/tickets")
    app = main(
        {},
        **{
            "sqlalchemy.url": "sqlite:///ignored.sqlite",
            "ticketing.require_api_key": "false",
            "ticketing.ticket_secret": "test-ticket-secret",
        },
    )
    try:
        url = app.registry["dbengine"].url
        assert url.drivername == "postgresql+psycopg"
        assert (url.host, url.port, url.database, url.username) == (
            "db.example",
            5432,
            "tickets",
            "user",
        )
    finally:
        app.registry["dbengine"].dispose()


# --- normalize_database_url -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///ticketing.sqlite", "sqlite:///ticketing.sqlite"),
        # Only the scheme is rewritten, never text elsewhere in the URL.
        ("postgres://u@h/postgres://", "postgresql+psycopg://u@h/postgres://"),
    ],
)
def test_normalize_database_url(given, expected):
    assert normalize_database_url(given) == expected


# --- production.ini -------------------------------------------------------------------------------


def production_settings():
    return dict(get_appsettings(str(REPO / "production.ini")))


def test_production_without_database_url_refuses_to_start(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = production_settings()
    assert "sqlalchemy.url" not in settings
    with pytest.raises(ConfigurationError) as raised:
        main({}, **settings)
    assert "DATABASE_URL" in str(raised.value)


def test_production_with_an_empty_database_url_refuses_to_start(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "")
    with pytest.raises(ConfigurationError) as raised:
        main({}, **production_settings())
    assert "DATABASE_URL" in str(raised.value)


def test_production_without_api_keys_refuses_to_start(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.example:5432/tickets")
    monkeypatch.delenv("TICKETING_API_KEYS", raising=False)
    with pytest.raises(ConfigurationError) as raised:
        main({}, **production_settings())
    assert "TICKETING_API_KEYS" in str(raised.value)


def test_production_without_a_ticket_secret_refuses_to_start(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.example:5432/tickets")
    monkeypatch.setenv("TICKETING_API_KEYS", "organiser-key-1")
    monkeypatch.delenv("TICKETING_TICKET_SECRET", raising=False)
    with pytest.raises(ConfigurationError) as raised:
        main({}, **production_settings())
    assert "TICKETING_TICKET_SECRET" in str(raised.value)
    assert "ticketing.ticket_secret" in str(raised.value)


def test_production_starts_with_database_url(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.example:5432/tickets")
    monkeypatch.setenv("TICKETING_API_KEYS", "organiser-key-1 organiser-key-2")
    monkeypatch.setenv("TICKETING_TICKET_SECRET", "production-ticket-secret")
    # production.ini pays through Stripe and mails over SMTP: their secrets are required too.
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_from_env")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_env")
    monkeypatch.setenv("MAIL_HOST", "smtp.example.test")
    monkeypatch.setenv("MAIL_DEFAULT_SENDER", "tickets@example.test")
    app = main({}, **production_settings())
    try:
        engine = app.registry["dbengine"]
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.url.host == "db.example"
        # The pool settings of production.ini reach the engine.
        assert engine.pool.size() == 3
    finally:
        app.registry["dbengine"].dispose()


# --- helpers --------------------------------------------------------------------------------------


def test_require_names_the_missing_setting():
    assert require({"a": "x"}, "a") == "x"
    for settings in ({}, {"a": None}, {"a": "  "}):
        with pytest.raises(ConfigurationError) as raised:
            require(settings, "a", " (set A)")
        assert "'a'" in str(raised.value) and "(set A)" in str(raised.value)


def test_as_int_and_as_bool():
    assert as_int({"n": "12"}, "n", 0) == 12
    assert as_int({}, "n", 7) == 7
    with pytest.raises(ConfigurationError) as raised:
        as_int({"n": "twelve"}, "n", 0)
    assert "'n'" in str(raised.value)
    assert as_bool({"b": "true"}, "b", False) is True
    assert as_bool({"b": "off"}, "b", True) is False
    assert as_bool({}, "b", True) is True
