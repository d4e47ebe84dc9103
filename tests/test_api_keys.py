"""API keys in the database: made, listed and revoked by admins (over HTTP, from pshell and
from ``ticketing_keys``), each with a scope that says what it may do."""

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from pyramid.request import Request
from pyramid.scripting import prepare
from sqlalchemy.orm import Session
from webtest import TestApp

from ticketing import main
from ticketing.domain import api_keys
from ticketing.migrations import upgrade_to_head
from ticketing.models import ApiKey, EventStatus, get_engine
from ticketing.security import CHECK_IN, EventContext

from .conftest import app_settings
from .factories import create_event, create_key, create_ticket_type

REPO = Path(__file__).resolve().parent.parent
ADMIN_KEY = "settings-admin-key"
EVENT = {
    "event": {
        "name": "Concert",
        "venue": "Stadium",
        "date": "2030-07-15T18:00:00Z",
        "ticket_price": "50.00",
        "total_tickets": 10,
    }
}


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def app(dbengine):
    settings = app_settings(
        dbengine, **{"ticketing.require_api_key": "true", "ticketing.api_keys": ADMIN_KEY}
    )
    return main({}, **settings)


@pytest.fixture
def testapp(app):
    return TestApp(app, extra_environ={"HTTP_HOST": "tickets.test"})


def make_key(testapp, scope, auth=ADMIN_KEY, **fields):
    response = testapp.post_json(
        "/api/keys", {"key": {"name": f"{scope} key", "scope": scope, **fields}},
        headers=bearer(auth), status=201,
    )  # fmt: skip
    return response


def test_an_admin_makes_a_key_and_sees_its_secret_once(testapp, dbengine):
    response = make_key(testapp, "read")
    made = response.json["data"]
    assert response.location == f"http://tickets.test/api/keys/{made['id']}"
    assert made["scope"] == "read" and made["event_ids"] is None
    assert made["secret"].startswith(f"tk_{made['prefix']}_")
    assert made["last_used_at"] is None and made["revoked_at"] is None

    listed = testapp.get("/api/keys", headers=bearer(ADMIN_KEY)).json["data"]
    assert [key["id"] for key in listed] == [made["id"]]
    assert "secret" not in listed[0]
    # Only a hash is stored: the key itself is nowhere in the database.
    with dbengine.connect() as connection:
        row = connection.execute(sa.select(ApiKey.__table__)).one()._asdict()
    assert made["secret"] not in [str(value) for value in row.values()]
    assert row["secret_hash"] != made["secret"]


def test_a_key_made_by_the_api_works_at_once(testapp):
    secret = make_key(testapp, "admin").json["data"]["secret"]
    testapp.post_json("/api/events", EVENT, headers=bearer(secret), status=201)
    # An admin key from the database may make keys too.
    make_key(testapp, "checkin", auth=secret)


def test_a_read_key_reads_everything_and_changes_nothing(testapp, dbengine):
    _, read = create_key(dbengine, "read")
    draft = create_event(dbengine, status=EventStatus.DRAFT)
    hidden = create_ticket_type(dbengine, draft, hidden=True)

    testapp.get("/api/orders", headers=bearer(read), status=200)
    listed = testapp.get("/api/events", headers=bearer(read)).json["data"]
    assert [event["id"] for event in listed] == [str(draft.id)]
    testapp.get(f"/api/events/{draft.id}", headers=bearer(read), status=200)
    types = testapp.get(f"/api/events/{draft.id}/ticket-types", headers=bearer(read)).json
    assert str(hidden.id) in [each["id"] for each in types["data"]]

    refused = testapp.post(f"/api/events/{draft.id}/publish", headers=bearer(read), status=403)
    assert refused.json["code"] == "insufficient_scope"
    assert refused.json["scope"] == "read"
    assert "needs a key with the scope admin" in refused.json["detail"]
    testapp.get("/api/keys", headers=bearer(read), status=403)


def test_a_checkin_key_is_refused_every_organiser_operation_and_sees_what_buyers_see(
    testapp, dbengine
):
    _, checkin = create_key(dbengine, "checkin")
    draft = create_event(dbengine, status=EventStatus.DRAFT)
    for response in (
        testapp.get("/api/orders", headers=bearer(checkin), status=403),
        testapp.post_json("/api/events", EVENT, headers=bearer(checkin), status=403),
        testapp.post_json(
            "/api/keys", {"key": {"name": "x", "scope": "admin"}}, headers=bearer(checkin),
            status=403,
        ),
    ):  # fmt: skip
        assert response.json["code"] == "insufficient_scope"
        assert response.json["scope"] == "checkin"
    # Door staff browse like buyers: no drafts.
    assert testapp.get("/api/events", headers=bearer(checkin)).json["data"] == []
    testapp.get(f"/api/events/{draft.id}", headers=bearer(checkin), status=404)


def test_a_revoked_key_is_refused_from_the_next_request_on(testapp, dbengine):
    key, secret = create_key(dbengine, "admin")
    testapp.get("/api/orders", headers=bearer(secret), status=200)

    testapp.delete(f"/api/keys/{key.id}", headers=bearer(ADMIN_KEY), status=204)

    refused = testapp.get("/api/orders", headers=bearer(secret), status=401)
    assert refused.json["code"] == "key_revoked"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    [listed] = testapp.get("/api/keys", headers=bearer(ADMIN_KEY)).json["data"]
    assert listed["revoked_at"] is not None
    # Revoking again changes nothing; an unknown key is not found.
    testapp.delete(f"/api/keys/{key.id}", headers=bearer(ADMIN_KEY), status=204)
    [again] = testapp.get("/api/keys", headers=bearer(ADMIN_KEY)).json["data"]
    assert again["revoked_at"] == listed["revoked_at"]
    missing = testapp.delete(f"/api/keys/{uuid.uuid4()}", headers=bearer(ADMIN_KEY), status=404)
    assert missing.json["code"] == "key_not_found"
    testapp.delete("/api/keys/not-a-uuid", headers=bearer(ADMIN_KEY), status=404)


def test_keys_that_only_look_like_ours_are_not_valid(testapp, dbengine):
    _, secret = create_key(dbengine, "admin")
    mark, prefix, rest = secret.split("_", 2)
    for guess in (
        f"{mark}_{prefix}_{rest[:-1]}",  # the right prefix, a wrong secret
        f"{mark}_{prefix}_",
        f"{mark}_{'0' * len(prefix)}_{rest}",
        prefix,
    ):
        response = testapp.get("/api/orders", headers=bearer(guess), status=403)
        assert response.json["code"] == "forbidden"


def test_event_ids_limit_checkin_keys_only_and_must_name_events(testapp, dbengine):
    event = create_event(dbengine)
    made = make_key(testapp, "checkin", event_ids=[str(event.id), str(event.id)]).json["data"]
    assert made["event_ids"] == [str(event.id)]

    wrong_scope = testapp.post_json(
        "/api/keys", {"key": {"name": "r", "scope": "read", "event_ids": [str(event.id)]}},
        headers=bearer(ADMIN_KEY), status=400,
    )  # fmt: skip
    assert wrong_scope.json["code"] == "event_ids_need_checkin_scope"
    unknown = testapp.post_json(
        "/api/keys", {"key": {"name": "c", "scope": "checkin", "event_ids": [str(uuid.uuid4())]}},
        headers=bearer(ADMIN_KEY), status=404,
    )  # fmt: skip
    assert unknown.json["code"] == "event_not_found"
    for body in (
        {"name": "c", "scope": "door"},
        {"name": "c", "scope": "checkin", "event_ids": []},
        {"name": "c", "scope": "checkin", "event_ids": ["nope"]},
        {"name": "", "scope": "admin"},
        {"name": "c", "scope": "admin", "secret": "mine"},
    ):
        response = testapp.post_json(
            "/api/keys", {"key": body}, headers=bearer(ADMIN_KEY), status=400
        )
        assert response.json["code"] == "validation_failed", body


def check_in_permitted(app, secret, event_id):
    """Whether the key may check in at ``event_id``, as a check-in view will ask."""
    request = Request.blank("/", headers=bearer(secret))
    with prepare(request=request, registry=app.registry) as env:
        with env["request"].tm:
            return bool(env["request"].has_permission(CHECK_IN, EventContext(event_id)))


def test_a_checkin_key_may_be_limited_to_some_events(app, dbengine):
    door, other = create_event(dbengine), create_event(dbengine)
    _, limited = create_key(dbengine, "checkin", event_ids=[door.id])
    _, anywhere = create_key(dbengine, "checkin")
    _, reader = create_key(dbengine, "read")
    assert check_in_permitted(app, limited, door.id)
    assert not check_in_permitted(app, limited, other.id)
    assert check_in_permitted(app, anywhere, other.id)
    assert check_in_permitted(app, ADMIN_KEY, other.id)
    assert not check_in_permitted(app, reader, door.id)


def test_last_used_at_is_written_at_most_once_a_minute(dbengine):
    key, secret = create_key(dbengine, "admin")
    factory = sa.orm.sessionmaker(bind=dbengine, expire_on_commit=False)
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

    def last_used():
        with Session(dbengine) as session:
            return session.get(ApiKey, key.id).last_used_at

    def use(at):
        with Session(dbengine, expire_on_commit=False) as session:
            found = api_keys.find_key(session, secret)
        api_keys.record_use(factory, found, now=at)

    use(start)
    assert last_used() == start
    use(start + dt.timedelta(seconds=59))
    assert last_used() == start
    use(start + dt.timedelta(seconds=61))
    assert last_used() == start + dt.timedelta(seconds=61)


def test_a_request_notes_its_key_s_use(testapp, dbengine):
    key, secret = create_key(dbengine, "read")
    testapp.get("/api/orders", headers=bearer(secret), status=200)
    [listed] = testapp.get("/api/keys", headers=bearer(ADMIN_KEY)).json["data"]
    assert listed["last_used_at"] is not None


def test_without_the_check_every_caller_is_an_admin(dbengine):
    client = TestApp(main({}, **app_settings(dbengine)))
    made = client.post_json("/api/keys", {"key": {"name": "n", "scope": "read"}}, status=201)
    assert made.json["data"]["secret"]
    client.get("/api/keys", status=200)


# --- the admin console and the command line --------------------------------------------------


@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.sqlite'}"
    engine = get_engine({"sqlalchemy.url": url})
    upgrade_to_head(engine)
    yield url, engine
    engine.dispose()


def run(command, url, commands=None):
    environ = dict(os.environ, DATABASE_URL=url, HUEY_URL="memory://")
    result = subprocess.run(
        command, input=commands, capture_output=True, text=True, cwd=REPO, env=environ,
        timeout=60,
    )  # fmt: skip
    return result


def stored_keys(engine):
    with Session(engine) as session:
        return session.scalars(sa.select(ApiKey).order_by(ApiKey.created_at)).all()


def test_keys_from_the_console(database):
    url, engine = database
    event = create_event(engine)
    result = run(
        [str(Path(sys.executable).parent / "pshell"), "development.ini"],
        url,
        f"made = create_key('Door', 'checkin', ['{event.id}'])\n"
        "print('SECRET', made['secret'])\n"
        "print('LISTED', [(k['name'], k['scope']) for k in list_keys()])\n"
        "print('REVOKED', revoke_key(made['id'])['revoked_at'] is not None)\n",
    )
    assert result.returncode == 0, result.stderr
    assert "SECRET tk_" in result.stdout
    assert "LISTED [('Door', 'checkin')]" in result.stdout
    assert "REVOKED True" in result.stdout
    [key] = stored_keys(engine)
    assert key.event_ids == [str(event.id)] and key.revoked_at is not None


def test_keys_from_the_command_line(database):
    url, engine = database
    script = str(Path(sys.executable).parent / "ticketing_keys")
    made = run([script, "development.ini", "create", "--name", "Reports", "--scope", "read"], url)
    assert made.returncode == 0, made.stderr
    [key] = stored_keys(engine)
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith(f"tk_{key.prefix}_")
    assert api_keys.find_key(Session(engine), secret).id == key.id

    listed = run([script, "development.ini", "list"], url)
    assert listed.returncode == 0, listed.stderr
    assert str(key.id) in listed.stdout and "Reports" in listed.stdout and "read" in listed.stdout
    assert secret not in listed.stdout  # never the key itself

    revoked = run([script, "development.ini", "revoke", str(key.id)], url)
    assert revoked.returncode == 0, revoked.stderr
    [key] = stored_keys(engine)
    assert key.revoked_at is not None

    unknown = run([script, "development.ini", "revoke", str(uuid.uuid4())], url)
    assert unknown.returncode == 1 and "No API key" in unknown.stderr
    wrong = run([script, "development.ini", "create", "--name", "X", "--scope", "door"], url)
    assert wrong.returncode == 2
