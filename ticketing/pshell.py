"""`pshell development.ini`: the admin console.

The shell opens with a transaction begun on ``tm`` and a session ``dbsession`` bound to it;
``tm.commit()`` keeps what you changed, ``tm.abort()`` throws it away.
"""

from ticketing import models
from ticketing.domain import events


def setup(env):
    request = env["request"]
    request.tm.begin()
    env["tm"] = request.tm
    env["dbsession"] = request.dbsession
    env["models"] = models
    env["events"] = events
