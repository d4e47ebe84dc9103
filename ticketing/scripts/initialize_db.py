"""``initialize_ticketing_db INI``: bring the database named by the ini (or DATABASE_URL) to the
newest migration, then issue the tickets of orders confirmed before tickets existed (which
needs the ini's ticket secret, so no migration can). Safe to run any number of times."""

import argparse
import sys

from pyramid.paster import bootstrap, setup_logging
from sqlalchemy.exc import OperationalError

from ticketing.domain.tickets import issue_missing_tickets
from ticketing.migrations import upgrade_to_head
from ticketing.models.types import utcnow


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config_uri", help="configuration file, e.g. development.ini")
    return parser.parse_args(argv[1:])


def main(argv=sys.argv):
    args = parse_args(argv)
    setup_logging(args.config_uri)
    with bootstrap(args.config_uri) as env:
        engine = env["registry"]["dbengine"]
        try:
            upgrade_to_head(engine)
        except OperationalError as error:
            print(
                f"Could not reach the database at {engine.url.render_as_string()}: {error.orig}\n"
                "Is the server running, and is sqlalchemy.url (or DATABASE_URL) right?",
                file=sys.stderr,
            )
            return 1
        request = env["request"]
        with request.tm:
            issued = issue_missing_tickets(
                request.dbsession, env["registry"]["ticket_codes"], now=utcnow()
            )
    print(f"Database at {engine.url.render_as_string()} is at the newest migration.")
    if issued:
        print(f"Issued the tickets of {issued} order(s) confirmed before tickets existed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
