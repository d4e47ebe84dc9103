"""Payment gateways."""

import collections
import contextlib
import datetime as dt
import functools
import json
import random
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from pyramid.exceptions import ConfigurationError
from sqlalchemy.dialects import postgresql, sqlite
from zope.interface import implementer

from ticketing.domain.errors import PaymentDeclined, PaymentUnavailable
from ticketing.interfaces import IPaymentGateway, PaymentStatus
from ticketing.settings import as_float, as_int

SUCCEEDED = PaymentStatus.SUCCEEDED
REQUIRES_ACTION = PaymentStatus.REQUIRES_ACTION
REQUIRES_PAYMENT_METHOD = PaymentStatus.REQUIRES_PAYMENT_METHOD
CANCELED = PaymentStatus.CANCELED

#: the mock's cards that need 3-D Secure, named as Stripe's test PaymentMethods are
THREE_D_SECURE_CARDS = frozenset(
    {
        "pm_card_threeDSecureRequired",
        "pm_card_threeDSecure2Required",
        "pm_card_authenticationRequired",
    }
)


@dataclass
class Charge:
    """A payment at the gateway (Stripe's PaymentIntent): ``status`` is a
    :class:`~ticketing.interfaces.PaymentStatus`; only a ``succeeded`` one holds money, unless
    it is ``refunded``."""

    id: str
    amount_cents: int
    currency: str
    idempotency_key: str
    metadata: dict = field(default_factory=dict)
    refund_id: str | None = None
    status: str = SUCCEEDED
    client_secret: str | None = None
    next_action: dict | None = None

    @property
    def refunded(self):
        return self.refund_id is not None

    @property
    def kept(self):
        """Whether the gateway holds this payment's money."""
        return self.status == SUCCEEDED and not self.refunded


def new_charge_id():
    """A charge id unique for ever, as a real gateway's: a ledger that outlives the process (or
    a second process on the same ledger) never hands out an id twice."""
    return f"ch_mock_{uuid.uuid4().hex}"


def new_refund_id():
    return f"re_mock_{uuid.uuid4().hex}"


def _new_action(amount_cents, currency, idempotency_key, metadata):
    charge_id = new_charge_id()
    return Charge(
        id=charge_id,
        amount_cents=amount_cents,
        currency=currency,
        idempotency_key=idempotency_key,
        metadata=dict(metadata or {}),
        status=REQUIRES_ACTION,
        client_secret=f"{charge_id}_secret_mock",
        next_action={"type": "use_stripe_sdk"},
    )


def _succeeded(action):
    """The ledger's charge of an action the buyer completed: the same payment, money taken."""
    return Charge(
        id=action.id,
        amount_cents=action.amount_cents,
        currency=action.currency,
        idempotency_key=action.idempotency_key,
        metadata=dict(action.metadata),
    )


class InMemoryLedger:
    """The mock gateway's book in this process's memory: charges by idempotency key, refund ids
    by refund idempotency key. The charges handed out are the ledger's own objects."""

    def __init__(self):
        self.charges = {}
        self.refunds = {}
        #: payments waiting for the buyer's authentication, by idempotency key
        self.actions = {}

    def begin_action(self, amount_cents, currency, idempotency_key, metadata):
        if idempotency_key in self.charges:
            return self.charges[idempotency_key]
        existing = self.actions.get(idempotency_key)
        if existing is None:
            existing = _new_action(amount_cents, currency, idempotency_key, metadata)
            self.actions[idempotency_key] = existing
        return existing

    def complete_action(self, charge_id, succeed):
        action = self._action(charge_id)
        if action.status == REQUIRES_ACTION:
            action.status = SUCCEEDED if succeed else REQUIRES_PAYMENT_METHOD
            if succeed:
                self.charges[action.idempotency_key] = _succeeded(action)
        return self.retrieve(charge_id)

    def cancel(self, charge_id):
        action = self._action(charge_id)
        if action.status != SUCCEEDED:
            action.status = CANCELED
        return self.retrieve(charge_id)

    def retrieve(self, charge_id):
        found = next((c for c in self.charges.values() if c.id == charge_id), None)
        if found is None:
            found = self._action(charge_id)
        return found

    def _action(self, charge_id):
        action = next((a for a in self.actions.values() if a.id == charge_id), None)
        if action is None:
            raise PaymentUnavailable(f"no such payment {charge_id}")
        return action

    def charge(self, amount_cents, currency, idempotency_key, metadata):
        existing = self.charges.get(idempotency_key)
        if existing is None:
            existing = Charge(
                id=new_charge_id(),
                amount_cents=amount_cents,
                currency=currency,
                idempotency_key=idempotency_key,
                metadata=dict(metadata or {}),
            )
            self.charges[idempotency_key] = existing
        elif existing.amount_cents != amount_cents:
            # What Stripe does when a key is replayed with different parameters.
            raise PaymentUnavailable("idempotency key reused with a different amount")
        return existing

    def refund(self, charge_id, idempotency_key):
        refund_id = self.refunds.get(idempotency_key)
        if refund_id is None:
            charge = next((c for c in self.charges.values() if c.id == charge_id), None)
            if charge is None:
                raise PaymentUnavailable(f"no such charge {charge_id}")
            if charge.refunded:
                # A second refund with another key: a real gateway refuses it too.
                raise PaymentUnavailable(f"charge {charge_id} is already refunded")
            refund_id = new_refund_id()
            charge.refund_id = refund_id
            self.refunds[idempotency_key] = refund_id
        return refund_id

    def find_charge(self, idempotency_key):
        return self.charges.get(idempotency_key)

    def kept_charges(self):
        return [charge for charge in self.charges.values() if not charge.refunded]

    def dispose(self):
        pass


#: PostgreSQL commits of the fake gateway's ledger that do not wait for the WAL flush: a real
#: gateway's bookkeeping costs our database nothing, and the mock's must not steal its flushes.
#: Its commits are visible at once all the same; only a database crash could lose the last few.
_NO_FLUSH_WAIT = {"options": "-c synchronous_commit=off"}


def _share_sqlite_ledger(dbapi_connection, connection_record):
    # A SQLite ledger is shared by processes (`make run`'s server and worker): readers must not
    # wait for a writer (WAL), and a writer waits its turn rather than failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 5000")
    _switch_to_wal(cursor)
    cursor.close()


def _switch_to_wal(cursor, attempts=100, pause=0.05):
    # The switch needs the file to itself. Connections asking at the same moment can deadlock on
    # it, and SQLite then answers "database is locked" at once rather than call the busy handler
    # (CI saw it with four starting together). The mode is kept in the file, so a loser that
    # tries again usually finds the winner's switch made.
    for attempt in range(attempts):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(pause)


class SqlLedger:
    """The mock gateway's book in a SQL database (``payments.mock.ledger_url``), shared by every
    process that points at it, so that the ledger of a multi-process server (gunicorn workers)
    can be checked against the orders afterwards.

    The table belongs to the fake gateway, not to the application: the ledger creates it itself
    and the app's migrations never see it. Every operation is one short transaction of its own.
    Idempotency holds across processes: a charge is ``INSERT ... ON CONFLICT DO NOTHING`` on the
    key (the primary key) and, when a twin won the race, a read of the twin's row; a refund is a
    conditional ``UPDATE`` of a charge not yet refunded, and its key is unique too. The charges
    handed out are snapshots of rows, not live objects.
    """

    TABLE = "mock_payment_ledger"
    ACTIONS_TABLE = "mock_payment_actions"

    def __init__(self, url, pool_size=5, max_overflow=5):
        # Imported here: the models package is the app's, and the in-memory mock needs none of it.
        from ticketing.models import normalize_database_url

        url = normalize_database_url(url)
        self._pool = {
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "connect_args": _NO_FLUSH_WAIT if url.startswith("postgresql") else {},
        }
        self.engine = sa.create_engine(url, **self._pool)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _share_sqlite_ledger)
        metadata = sa.MetaData()
        self.table = sa.Table(
            self.TABLE,
            metadata,
            sa.Column("idempotency_key", sa.String(255), primary_key=True),
            sa.Column("charge_id", sa.String(64), nullable=False, unique=True),
            sa.Column("amount_cents", sa.BigInteger, nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("charge_metadata", sa.JSON, nullable=False),
            sa.Column("refund_id", sa.String(64), unique=True),
            sa.Column("refund_idempotency_key", sa.String(255), unique=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("refunded_at", sa.DateTime(timezone=True)),
        )
        # Payments waiting for the buyer's authentication; one that succeeds gets its row in
        # the ledger above too, so the ledger alone says which money is kept.
        self.actions = sa.Table(
            self.ACTIONS_TABLE,
            metadata,
            sa.Column("idempotency_key", sa.String(255), primary_key=True),
            sa.Column("charge_id", sa.String(64), nullable=False, unique=True),
            sa.Column("amount_cents", sa.BigInteger, nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("charge_metadata", sa.JSON, nullable=False),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
        self._create_table(metadata)

    def _create_table(self, metadata, attempts=5):
        # Another process (a twin gunicorn worker) may create a table between our check and our
        # CREATE TABLE: we check again, and skip what it made. A failure that persists is real.
        for attempt in range(attempts):
            try:
                metadata.create_all(self.engine, checkfirst=True)
                return
            except sa.exc.DBAPIError:
                if attempt == attempts - 1:
                    raise

    def _action_from(self, row):
        return Charge(
            id=row.charge_id,
            amount_cents=row.amount_cents,
            currency=row.currency,
            idempotency_key=row.idempotency_key,
            metadata=dict(row.charge_metadata or {}),
            status=PaymentStatus(row.status),
            client_secret=f"{row.charge_id}_secret_mock",
            next_action={"type": "use_stripe_sdk"} if row.status == REQUIRES_ACTION else None,
        )

    def begin_action(self, amount_cents, currency, idempotency_key, metadata):
        made = self.find_charge(idempotency_key)
        if made is not None:
            return made
        action = _new_action(amount_cents, currency, idempotency_key, metadata)
        actions = self.actions
        with self.engine.begin() as connection:
            try:
                with connection.begin_nested():
                    connection.execute(
                        actions.insert().values(
                            idempotency_key=idempotency_key,
                            charge_id=action.id,
                            amount_cents=amount_cents,
                            currency=currency,
                            charge_metadata=dict(metadata or {}),
                            status=REQUIRES_ACTION,
                            created_at=dt.datetime.now(dt.UTC),
                        )
                    )
            except sa.exc.IntegrityError:
                pass  # a twin with the same key began it first: answer with the twin's
            row = connection.execute(
                sa.select(actions).where(actions.c.idempotency_key == idempotency_key)
            ).one()
        return self._action_from(row)

    def complete_action(self, charge_id, succeed):
        actions = self.actions
        with self.engine.begin() as connection:
            row = connection.execute(
                sa.select(actions).where(actions.c.charge_id == charge_id).with_for_update()
            ).first()
            if row is None:
                raise PaymentUnavailable(f"no such payment {charge_id}")
            if row.status == REQUIRES_ACTION:
                status = SUCCEEDED if succeed else REQUIRES_PAYMENT_METHOD
                connection.execute(
                    actions.update().where(actions.c.charge_id == charge_id).values(status=status)
                )
                if succeed:
                    connection.execute(
                        self.table.insert().values(
                            idempotency_key=row.idempotency_key,
                            charge_id=row.charge_id,
                            amount_cents=row.amount_cents,
                            currency=row.currency,
                            charge_metadata=row.charge_metadata,
                            created_at=dt.datetime.now(dt.UTC),
                        )
                    )
        return self.retrieve(charge_id)

    def cancel(self, charge_id):
        actions = self.actions
        with self.engine.begin() as connection:
            connection.execute(
                actions.update()
                .where(actions.c.charge_id == charge_id, actions.c.status != SUCCEEDED)
                .values(status=CANCELED)
            )
        return self.retrieve(charge_id)

    def retrieve(self, charge_id):
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(self.table).where(self.table.c.charge_id == charge_id)
            ).first()
            if row is not None:
                return self._charge_from(row)
            row = connection.execute(
                sa.select(self.actions).where(self.actions.c.charge_id == charge_id)
            ).first()
        if row is None:
            raise PaymentUnavailable(f"no such payment {charge_id}")
        return self._action_from(row)

    @functools.cached_property
    def _charges(self):
        """PostgreSQL's engine for charges: its connections autocommit from the start (an
        engine's execution option would set it at every checkout and reset it at every return),
        so a charge is one statement and one round trip."""
        return sa.create_engine(self.engine.url, isolation_level="AUTOCOMMIT", **self._pool)

    @functools.cached_property
    def _insert_charge(self):
        """``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING charge_id``, built once
        (building it per charge was most of its cost)."""
        insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[
            self.engine.dialect.name
        ]
        columns = ("idempotency_key", "charge_id", "amount_cents", "currency")
        columns += ("charge_metadata", "created_at")
        return (
            insert(self.table)
            .values({name: sa.bindparam(name, type_=self.table.c[name].type) for name in columns})
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(self.table.c.charge_id)
        )

    @functools.cached_property
    def _insert_charge_sql(self):
        """:attr:`_insert_charge` in the driver's own SQL, compiled once: a charge per purchase
        makes the fake gateway a part of every benchmarked sale, and it should cost the server
        what a remote gateway's answer costs it, next to nothing (a charge so: 234 Python calls
        and 0.22-0.24 ms of CPU here; as a Core statement reading every column back: 544 calls,
        0.38-0.44 ms)."""
        return str(self._insert_charge.compile(dialect=self._charges.dialect))

    def _charge_recorded(self, values):
        """Record a new charge; False when a twin's key was there first (on PostgreSQL after
        waiting for the twin's transaction to end)."""
        if self.engine.dialect.name == "postgresql":
            driver_values = {**values, "charge_metadata": json.dumps(values["charge_metadata"])}
            with self._charges.connect() as connection:
                made = connection.exec_driver_sql(self._insert_charge_sql, driver_values)
                return made.first() is not None
        with self.engine.begin() as connection:
            return connection.execute(self._insert_charge, values).first() is not None

    def _charge_from(self, row):
        return Charge(
            id=row.charge_id,
            amount_cents=row.amount_cents,
            currency=row.currency,
            idempotency_key=row.idempotency_key,
            metadata=dict(row.charge_metadata or {}),
            refund_id=row.refund_id,
        )

    def charge(self, amount_cents, currency, idempotency_key, metadata):
        values = {
            "idempotency_key": idempotency_key,
            "charge_id": new_charge_id(),
            "amount_cents": amount_cents,
            "currency": currency,
            "charge_metadata": dict(metadata or {}),
            "created_at": dt.datetime.now(dt.UTC),
        }
        if self._charge_recorded(values):
            return Charge(
                id=values["charge_id"],
                amount_cents=amount_cents,
                currency=currency,
                idempotency_key=idempotency_key,
                metadata=values["charge_metadata"],
            )
        with self.engine.connect() as connection:
            twin = connection.execute(
                sa.select(self.table).where(self.table.c.idempotency_key == idempotency_key)
            ).one()
        if twin.amount_cents != amount_cents:
            # What Stripe does when a key is replayed with different parameters.
            raise PaymentUnavailable("idempotency key reused with a different amount")
        return self._charge_from(twin)

    def refund(self, charge_id, idempotency_key):
        table = self.table
        try:
            with self.engine.begin() as connection:
                refund_id = connection.scalar(
                    sa.select(table.c.refund_id).where(
                        table.c.refund_idempotency_key == idempotency_key
                    )
                )
                if refund_id is not None:
                    return refund_id
                refund_id = connection.scalar(
                    sa.update(table)
                    .where(table.c.charge_id == charge_id, table.c.refund_id.is_(None))
                    .values(
                        refund_id=new_refund_id(),
                        refund_idempotency_key=idempotency_key,
                        refunded_at=dt.datetime.now(dt.UTC),
                    )
                    .returning(table.c.refund_id)
                )
                if refund_id is not None:
                    return refund_id
                charge = connection.execute(
                    sa.select(table.c.refund_id, table.c.refund_idempotency_key).where(
                        table.c.charge_id == charge_id
                    )
                ).first()
        except sa.exc.IntegrityError:
            # A twin refund with the same key, of another charge, committed first: its key
            # answers with its refund, as above.
            with self.engine.connect() as connection:
                refund_id = connection.scalar(
                    sa.select(table.c.refund_id).where(
                        table.c.refund_idempotency_key == idempotency_key
                    )
                )
            if refund_id is None:
                raise
            return refund_id
        if charge is None:
            raise PaymentUnavailable(f"no such charge {charge_id}")
        if charge.refund_idempotency_key == idempotency_key:
            return charge.refund_id  # a twin with the same key refunded it meanwhile
        # A second refund with another key: a real gateway refuses it too.
        raise PaymentUnavailable(f"charge {charge_id} is already refunded")

    def find_charge(self, idempotency_key):
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(self.table).where(self.table.c.idempotency_key == idempotency_key)
            ).first()
        return None if row is None else self._charge_from(row)

    def kept_charges(self):
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(self.table)
                .where(self.table.c.refund_id.is_(None))
                .order_by(self.table.c.created_at, self.table.c.charge_id)
            ).all()
        return [self._charge_from(row) for row in rows]

    @property
    def charges(self):
        """Every charge, by idempotency key (a snapshot)."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(self.table).order_by(self.table.c.created_at))
            return {row.idempotency_key: self._charge_from(row) for row in rows}

    @property
    def refunds(self):
        """Every refund id, by refund idempotency key (a snapshot)."""
        table = self.table
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(table.c.refund_idempotency_key, table.c.refund_id).where(
                    table.c.refund_id.is_not(None)
                )
            )
            return {key: refund_id for key, refund_id in rows}

    def dispose(self):
        if "_charges" in self.__dict__:
            self._charges.dispose()
        self.engine.dispose()


@implementer(IPaymentGateway)
class MockPaymentGateway:
    """A fake gateway that keeps a ledger of charges and refunds.

    It honours idempotency keys like a real gateway, and can be told to fail or to be slow:

    - ``card_declined``: every charge is declined;
    - ``timeout``: the call times out before the gateway takes the money;
    - ``timeout_after_charge``: the gateway takes the money, but the answer never arrives;
    - ``server_error``: the gateway answers with an internal error and takes nothing.

    A charge with one of :data:`THREE_D_SECURE_CARDS` as its ``payment_method`` (Stripe's test
    cards that need 3-D Secure) takes no money: it answers ``requires_action`` with a client
    secret, as Stripe does, until :meth:`complete_action` plays the buyer's authentication
    (``ticketing.adapters.mock_webhooks`` then delivers the webhook Stripe would send).

    ``failure_mode`` applies to charges, ``refund_failure_mode`` to refunds and
    ``lookup_failure_mode`` to :meth:`find_charge`; ``failure_rate`` (0 to 1, default 1) is the
    share of calls that fail so, chosen at random: ``timeout_after_charge`` at 0.2 is a gateway
    that loses one answer in five under load.

    The ledger lives in memory by default, so each application builds its own and no state is
    shared between apps (or tests). With ``ledger_url`` (setting ``payments.mock.ledger_url``, a
    SQL database URL) it lives in that database instead (see :class:`SqlLedger`), shared by every
    process pointing at it and kept across restarts, as a real gateway's books are: how
    development's server and worker agree, and how a benchmark checks the books of several
    gunicorn workers. A ledger database that cannot be reached is a gateway that does not answer
    (:class:`PaymentUnavailable`).
    """

    name = "mock"
    FAILURE_MODES = frozenset({"card_declined", "timeout", "timeout_after_charge", "server_error"})

    def __init__(
        self,
        failure_mode=None,
        refund_failure_mode=None,
        lookup_failure_mode=None,
        latency_ms=0,
        *,
        failure_rate=1.0,
        ledger_url=None,
        ledger_pool_size=5,
        kept_calls=10_000,
    ):
        self._lock = threading.Lock()
        self._random = random.Random()
        self._calls = collections.deque(maxlen=kept_calls)
        self.configure(
            failure_mode, refund_failure_mode, lookup_failure_mode, latency_ms, failure_rate
        )
        self.ledger = SqlLedger(ledger_url, ledger_pool_size) if ledger_url else InMemoryLedger()

    @classmethod
    def from_settings(cls, settings):
        return cls(
            failure_mode=settings.get("payments.mock.failure_mode") or None,
            refund_failure_mode=settings.get("payments.mock.refund_failure_mode") or None,
            lookup_failure_mode=settings.get("payments.mock.lookup_failure_mode") or None,
            latency_ms=as_int(settings, "payments.mock.latency_ms", 0),
            failure_rate=as_float(settings, "payments.mock.failure_rate", 1.0),
            ledger_url=(settings.get("payments.mock.ledger_url") or "").strip() or None,
            ledger_pool_size=as_int(settings, "payments.mock.ledger_pool_size", 5),
        )

    def configure(
        self,
        failure_mode=None,
        refund_failure_mode=None,
        lookup_failure_mode=None,
        latency_ms=0,
        failure_rate=1.0,
    ):
        if not 0 <= failure_rate <= 1:
            raise ConfigurationError(f"mock payment failure rate {failure_rate!r} is not in [0, 1]")
        for mode in (failure_mode, refund_failure_mode, lookup_failure_mode):
            if mode is not None and mode not in self.FAILURE_MODES:
                raise ConfigurationError(
                    f"unknown mock payment failure mode {mode!r}; "
                    f"known: {', '.join(sorted(self.FAILURE_MODES))}"
                )
        self.failure_mode = failure_mode
        self.refund_failure_mode = refund_failure_mode
        self.lookup_failure_mode = lookup_failure_mode
        self.latency_ms = latency_ms
        self.failure_rate = failure_rate

    @property
    def calls(self):
        """The latest calls (``kept_calls`` of them, 10,000 by default: a server on the mock,
        `make run`'s or a benchmark's, lives for days), oldest first, as tuples of the
        operation's name and its arguments."""
        return list(self._calls)

    @property
    def shared(self):
        """True when the ledger lives in a database other processes may share."""
        return isinstance(self.ledger, SqlLedger)

    @property
    def charges(self):
        """Charges by idempotency key (refunded ones included)."""
        return self.ledger.charges

    @property
    def refunds(self):
        """Refund ids by refund idempotency key."""
        return self.ledger.refunds

    def charge(
        self, amount_cents, currency, idempotency_key, description, metadata, payment_method=None
    ):
        self._wait()
        with self._operation("charge", idempotency_key, amount_cents):
            mode = self._failing(self.failure_mode)
            self._fail_before("charge", mode)
            if payment_method in THREE_D_SECURE_CARDS:
                return self.ledger.begin_action(amount_cents, currency, idempotency_key, metadata)
            made = self.ledger.charge(amount_cents, currency, idempotency_key, metadata)
            if mode == "timeout_after_charge":
                raise PaymentUnavailable("payment gateway timed out")
            return made

    def refund(self, charge_id, idempotency_key):
        self._wait()
        with self._operation("refund", idempotency_key, charge_id):
            mode = self._failing(self.refund_failure_mode)
            self._fail_before("refund", mode)
            refund_id = self.ledger.refund(charge_id, idempotency_key)
            if mode == "timeout_after_charge":
                raise PaymentUnavailable("payment gateway timed out")
            return refund_id

    def find_charge(self, idempotency_key):
        self._wait()
        with self._operation("find_charge", idempotency_key, None):
            self._fail_before("find_charge", self._failing(self.lookup_failure_mode))
            return self.ledger.find_charge(idempotency_key)

    def retrieve_payment(self, charge_id):
        self._wait()
        with self._operation("retrieve_payment", charge_id):
            self._fail_before("find_charge", self._failing(self.lookup_failure_mode))
            return self.ledger.retrieve(charge_id)

    def cancel_payment(self, charge_id):
        self._wait()
        with self._operation("cancel_payment", charge_id):
            return self.ledger.cancel(charge_id)

    def complete_action(self, charge_id, succeed=True):
        """Play the buyer's 3-D Secure authentication of a ``requires_action`` payment: it
        succeeds (the money is taken) or fails (``requires_payment_method``). Returns the
        payment; a payment no longer waiting is left as it is."""
        with self._operation("complete_action", charge_id, succeed):
            return self.ledger.complete_action(charge_id, succeed)

    def kept_charges(self):
        """Charges that took money and were not refunded."""
        with self._operation(None):
            return self.ledger.kept_charges()

    def dispose(self):
        """Release the shared ledger's connections (nothing to do for the in-memory one)."""
        self.ledger.dispose()

    @contextlib.contextmanager
    def _operation(self, name, *details):
        """Record the call; serialise operations on the in-memory ledger. The shared ledger needs
        no lock here: the database orders concurrent operations, across processes too."""
        with contextlib.nullcontext() if self.shared else self._lock:
            if name is not None:
                self._calls.append((name, *details))
            try:
                yield
            except sa.exc.OperationalError as error:
                raise PaymentUnavailable("payment gateway unreachable") from error

    def _failing(self, mode):
        """``mode``, for the share of calls ``failure_rate`` says; None for the others."""
        if mode is None or self.failure_rate >= 1 or self._random.random() < self.failure_rate:
            return mode
        return None

    def _wait(self):
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)

    @staticmethod
    def _fail_before(operation, mode):
        if mode == "card_declined" and operation == "charge":
            raise PaymentDeclined("Your card was declined.", decline_code="generic_decline")
        if mode == "timeout":
            raise PaymentUnavailable("payment gateway timed out")
        if mode == "server_error":
            raise PaymentUnavailable("payment gateway error")
