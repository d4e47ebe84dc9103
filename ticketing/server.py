"""``egg:ticketing#waitress``: waitress, serving on the port given as ``pserve INI http_port=NNNN``
and on 6543 otherwise.

PasteDeploy lets an ini's ``[DEFAULT]`` section win over the variables given to pserve, so a
default port cannot be written in the ini itself; this runner supplies it instead.
"""

import waitress

DEFAULT_HTTP_PORT = "6543"


def serve(app, global_conf, host="localhost", **settings):
    port = global_conf.get("http_port", DEFAULT_HTTP_PORT)
    settings.setdefault("listen", f"{host}:{port}")
    return waitress.serve(app, **settings)
