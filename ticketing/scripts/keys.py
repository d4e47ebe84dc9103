"""``ticketing_keys INI create|list|revoke``: manage the organisers' API keys from the command
line (the same as ``POST /api/keys``, ``GET /api/keys`` and ``DELETE /api/keys/{id}``).

``create --name NAME --scope admin|read|checkin [--event ID ...]`` prints the key itself, once:
only its hash is kept. ``list`` prints every key, revoked ones too, never the keys themselves.
``revoke ID`` refuses the key from the next request on.
"""

import argparse
import sys
import uuid

from pyramid.paster import bootstrap, setup_logging

from ticketing.domain import api_keys
from ticketing.domain.errors import TicketingError
from ticketing.models import KeyScope
from ticketing.models.types import utcnow


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config_uri", help="configuration file, e.g. development.ini")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a key and print it (once)")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--scope", required=True, choices=[scope.value for scope in KeyScope])
    create.add_argument(
        "--event",
        dest="event_ids",
        action="append",
        type=uuid.UUID,
        help="checkin keys: an event it may check in at (repeat for several; default: all)",
    )
    commands.add_parser("list", help="list every key")
    revoke = commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id", type=uuid.UUID)
    return parser.parse_args(argv[1:])


def _describe(key):
    events = "all events" if key.event_ids is None else ", ".join(key.event_ids)
    used = key.last_used_at.isoformat() if key.last_used_at else "never used"
    revoked = f"  revoked {key.revoked_at.isoformat()}" if key.revoked_at else ""
    return f"{key.id}  tk_{key.prefix}_...  {key.scope}  {key.name!r}  {events}  {used}{revoked}"


def run(args, dbsession):
    now = utcnow()
    if args.command == "create":
        key, secret = api_keys.create_key(
            dbsession, name=args.name, scope=args.scope, event_ids=args.event_ids, now=now
        )
        print(_describe(key))
        print(f"The key (shown this once; only its hash is kept):\n{secret}")
    elif args.command == "list":
        for key in api_keys.list_keys(dbsession):
            print(_describe(key))
    else:
        print(_describe(api_keys.revoke_key(dbsession, args.key_id, now=now)))


def main(argv=sys.argv):
    args = parse_args(argv)
    setup_logging(args.config_uri)
    with bootstrap(args.config_uri) as env:
        request = env["request"]
        try:
            with request.tm:
                run(args, request.dbsession)
        except TicketingError as error:
            print(error.detail, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
