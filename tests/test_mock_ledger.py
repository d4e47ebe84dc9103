"""The mock gateway's shared ledger (``payments.mock.ledger_url``): one book in a SQL database for
every process that points at it, with the in-memory ledger's semantics, idempotent under real
concurrency (threads with engines of their own stand in for gunicorn workers). Runs on SQLite and
on PostgreSQL; the PostgreSQL ledger lives in a database of its own, dropped at the end."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from webtest import TestApp

from ticketing import main
from ticketing.adapters.payments import Charge, MockPaymentGateway, SqlLedger
from ticketing.domain.errors import PaymentDeclined, PaymentUnavailable
from ticketing.interfaces import IPaymentGateway
from ticketing.models import OrderStatus
from ticketing.models.meta import Base

from .conftest import app_settings
from .factories import assert_books_balance, create_event, load_event, orders_of


@pytest.fixture(scope="module")
def pg_ledger_server_url(postgresql_url):
    """A PostgreSQL database for ledgers only, beside the suite's own."""
    name = f"{postgresql_url.database}_ledger"
    admin = sa.create_engine(postgresql_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield postgresql_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        return
    url = request.getfixturevalue("pg_ledger_server_url")
    yield url
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE IF EXISTS {SqlLedger.TABLE}"))
    engine.dispose()


@pytest.fixture
def gateways(ledger_url):
    """Build shared-ledger gateways on one URL (each with its own engine, like a process)."""
    built = []

    def build(**options):
        gateway = MockPaymentGateway(ledger_url=ledger_url, **options)
        built.append(gateway)
        return gateway

    yield build
    for gateway in built:
        gateway.dispose()


def charge(gateway, key="key-1", amount=5000):
    return gateway.charge(amount, "USD", key, "2 tickets for Concert", {"order_id": "o-1"})


def run_at_once(count, call):
    barrier = threading.Barrier(count)

    def go(number):
        barrier.wait()
        try:
            return call(number)
        except PaymentUnavailable as error:
            return error

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(go, range(count)))


# --- configuration --------------------------------------------------------------------------------


def test_the_ledger_is_in_memory_unless_a_url_is_set(tmp_path):
    assert not MockPaymentGateway().shared
    assert not MockPaymentGateway.from_settings({"payments.mock.ledger_url": " "}).shared
    gateway = MockPaymentGateway.from_settings(
        {"payments.mock.ledger_url": f"sqlite:///{tmp_path / 'l.sqlite'}"}
    )
    try:
        assert gateway.shared
    finally:
        gateway.dispose()


def test_the_ledger_table_is_the_gateways_own(gateways, ledger_url):
    gateways()
    gateways()  # a second process finds the table there
    engine = sa.create_engine(ledger_url)
    try:
        assert sa.inspect(engine).has_table(SqlLedger.TABLE)
    finally:
        engine.dispose()
    # Not the application's: its migrations and models know nothing of it.
    assert SqlLedger.TABLE not in Base.metadata.tables


def test_processes_starting_together_both_get_the_table(ledger_url):
    built = run_at_once(4, lambda _: MockPaymentGateway(ledger_url=ledger_url))
    try:
        assert all(isinstance(gateway, MockPaymentGateway) for gateway in built)
    finally:
        for gateway in built:
            gateway.dispose()


# --- the ledger's semantics, as in memory ------------------------------------------------------


def test_a_charge_is_seen_by_every_gateway_on_the_ledger(gateways):
    one, other = gateways(), gateways()
    made = charge(one)
    assert isinstance(made, Charge)
    assert (made.amount_cents, made.currency, made.idempotency_key) == (5000, "USD", "key-1")
    assert made.metadata == {"order_id": "o-1"}
    assert not made.refunded
    assert other.find_charge("key-1") == made
    assert other.charges == {"key-1": made}
    assert other.kept_charges() == [made]
    assert other.find_charge("key-2") is None
    assert [call[0] for call in one.calls] == ["charge"]


def test_the_same_key_gives_the_same_charge_on_any_gateway(gateways):
    one, other = gateways(), gateways()
    first = charge(one)
    assert charge(other) == first
    assert len(one.charges) == 1
    another = charge(other, key="key-2")
    assert another.id != first.id
    assert len(one.kept_charges()) == 2


def test_a_key_reused_with_another_amount_is_refused(gateways):
    gateway = gateways()
    first = charge(gateway)
    with pytest.raises(PaymentUnavailable):
        charge(gateway, amount=9999)
    assert gateway.kept_charges() == [first]


def test_card_declined_takes_nothing(gateways):
    gateway = gateways(failure_mode="card_declined")
    with pytest.raises(PaymentDeclined):
        charge(gateway)
    assert gateway.charges == {}
    assert gateway.find_charge("key-1") is None


@pytest.mark.parametrize("mode", ["timeout", "server_error"])
def test_unavailable_before_charging_takes_nothing(gateways, mode):
    gateway = gateways(failure_mode=mode)
    with pytest.raises(PaymentUnavailable):
        charge(gateway)
    assert gateway.kept_charges() == []
    gateway.configure()
    made = charge(gateway)
    assert gateway.kept_charges() == [made]


def test_timeout_after_charge_keeps_the_money_for_the_retry(gateways):
    gateway = gateways(failure_mode="timeout_after_charge")
    with pytest.raises(PaymentUnavailable):
        charge(gateway)
    kept = gateway.find_charge("key-1")
    assert kept is not None and kept.amount_cents == 5000
    gateway.configure()
    assert charge(gateway) == kept
    assert gateway.kept_charges() == [kept]


def test_a_refund_with_the_same_key_is_made_once(gateways):
    one, other = gateways(), gateways()
    made = charge(one)
    first = one.refund(made.id, "refund-1")
    assert other.refund(made.id, "refund-1") == first
    assert other.find_charge("key-1").refund_id == first
    assert one.refunds == {"refund-1": first}
    assert one.kept_charges() == []
    with pytest.raises(PaymentUnavailable):
        other.refund(made.id, "refund-2")
    assert one.refunds == {"refund-1": first}


def test_a_refund_of_an_unknown_charge_is_refused(gateways):
    gateway = gateways()
    with pytest.raises(PaymentUnavailable):
        gateway.refund("ch_nothing", "refund-1")
    assert gateway.refunds == {}


def test_refund_failure_modes(gateways):
    gateway = gateways()
    made = charge(gateway)
    gateway.configure(refund_failure_mode="server_error")
    with pytest.raises(PaymentUnavailable):
        gateway.refund(made.id, "refund-1")
    assert gateway.kept_charges() == [made]
    gateway.configure(refund_failure_mode="timeout_after_charge")
    with pytest.raises(PaymentUnavailable):
        gateway.refund(made.id, "refund-1")
    refunded = gateway.find_charge("key-1")
    assert refunded.refunded
    gateway.configure()
    assert gateway.refund(made.id, "refund-1") == refunded.refund_id
    assert len(gateway.refunds) == 1


def test_lookup_failure_mode(gateways):
    gateway = gateways(lookup_failure_mode="timeout")
    with pytest.raises(PaymentUnavailable):
        gateway.find_charge("key-1")


# --- idempotency under concurrency ----------------------------------------------------------------


def test_simultaneous_charges_with_one_key_make_one_charge(gateways):
    workers = [gateways() for _ in range(4)]
    made = run_at_once(20, lambda n: charge(workers[n % 4]))
    assert all(isinstance(result, Charge) for result in made), made
    assert len({result.id for result in made}) == 1
    assert len(workers[0].charges) == 1


def test_simultaneous_refunds_refund_once(gateways):
    workers = [gateways() for _ in range(4)]
    made = charge(workers[0])
    same_key = run_at_once(12, lambda n: workers[n % 4].refund(made.id, "refund-1"))
    assert len(set(same_key)) == 1 and isinstance(same_key[0], str), same_key
    other_keys = run_at_once(12, lambda n: workers[n % 4].refund(made.id, f"refund-x{n}"))
    assert all(isinstance(result, PaymentUnavailable) for result in other_keys)
    assert workers[0].refunds == {"refund-1": same_key[0]}


# --- through the application ----------------------------------------------------------------------


def test_purchases_and_a_cancel_balance_against_the_shared_ledger(pg_engine, ledger_url):
    settings = app_settings(pg_engine, **{"payments.mock.ledger_url": ledger_url})
    apps = [main({}, **settings) for _ in range(2)]  # two "workers"
    gateways = [app.registry.getUtility(IPaymentGateway) for app in apps]
    try:
        assert all(gateway.shared for gateway in gateways)
        event = create_event(pg_engine, total_tickets=10)

        def buy(number):
            order = {
                "customer_email": "buyer@example.com",
                "customer_name": "Buyer",
                "quantity": 1,
                "idempotency_key": f"buyer-{number % 12}",
            }
            return TestApp(apps[number % 2]).post_json(
                f"/api/events/{event.id}/purchase", {"order": order}, status="*"
            )

        responses = run_at_once(24, buy)
        statuses = [response.status_int for response in responses]
        assert statuses.count(201) == 10, statuses
        confirmed = [o for o in orders_of(pg_engine) if o.status == OrderStatus.CONFIRMED]
        assert len(confirmed) == 10
        assert load_event(pg_engine, event.id).available_tickets == 0

        cancelled = TestApp(apps[1]).post(f"/api/orders/{confirmed[0].id}/cancel")
        assert cancelled.json["data"]["status"] == "cancelled"
        for gateway in gateways:
            assert_books_balance(pg_engine, gateway)
        assert len(gateways[0].kept_charges()) == 9
    finally:
        for app in apps:
            app.registry.getUtility(IPaymentGateway).dispose()


def test_unique_charge_ids_across_gateways(gateways):
    one, other = gateways(), gateways()
    ids = {charge(one, key=f"a-{uuid.uuid4()}").id for _ in range(5)}
    ids |= {charge(other, key=f"b-{uuid.uuid4()}").id for _ in range(5)}
    assert len(ids) == 10
