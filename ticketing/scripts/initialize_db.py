"""``initialize_ticketing_db INI``: bring the database named by the ini (or DATABASE_URL) to the
newest migration. Safe to run any number of times."""

import argparse
import sys

from pyramid.paster import bootstrap, setup_logging
from sqlalchemy.exc import OperationalError

from ticketing.migrations import upgrade_to_head


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
    print(f"Database at {engine.url.render_as_string()} is at the newest migration.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
