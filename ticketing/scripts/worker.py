"""``ticketing_worker INI [--queue NAME]``: run the background job consumers.

With ``--queue`` it runs that queue's consumer in this process (Huey's consumer wants the main
thread for its signal handlers). Without it, it starts one child process per queue and stops
them all when it is stopped.

``worker.nice`` (0 to 19, added to the process's niceness) makes the consumers yield the CPU to
whatever shares the machine with them: on a box that also serves the sale, the emails of a
rush wait for the spare CPU after it instead of slowing the purchases down (they are owed in
the outbox all the same).
"""

import argparse
import os
import signal
import subprocess
import sys

from pyramid.exceptions import ConfigurationError
from pyramid.paster import bootstrap, setup_logging

from ticketing.jobs import QUEUES
from ticketing.settings import as_int

#: what os.nice() may add: up to the lowest priority there is
NICE_RANGE = range(0, 20)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config_uri", help="configuration file, e.g. production.ini")
    parser.add_argument("--queue", choices=sorted(QUEUES), help="run only this queue")
    return parser.parse_args(argv[1:])


def run_queue(config_uri, queue):
    setup_logging(config_uri)
    env = bootstrap(config_uri)
    try:
        nice = as_int(env["registry"].settings, "worker.nice", 0)
        if nice not in NICE_RANGE:
            raise ConfigurationError(f"setting 'worker.nice' must be 0 to 19, got {nice}")
        os.nice(nice)
        env["registry"]["jobs"].consumer(queue).run()
    finally:
        env["closer"]()


def run_all_queues(config_uri):
    children = [
        subprocess.Popen([sys.executable, "-m", __name__, config_uri, "--queue", queue])
        for queue in QUEUES
    ]

    def stop(signum, frame):
        for child in children:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return max(child.wait() for child in children)


def main(argv=sys.argv):
    args = parse_args(argv)
    if args.queue:
        run_queue(args.config_uri, args.queue)
        return 0
    return run_all_queues(args.config_uri)


if __name__ == "__main__":
    sys.exit(main())
