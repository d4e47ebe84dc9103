"""Event ticketing REST API."""

from pyramid.config import Configurator


def main(global_config, **settings):
    """Build the WSGI application; every part configures itself in its own ``includeme``."""
    with Configurator(settings=settings) as config:
        config.include(".settings")
        config.include(".models")
        config.include(".events")
        config.include(".tweens")
        config.include(".security")
        config.include(".ticket_secret")
        config.include(".ratelimit")
        config.include(".admission")
        config.include(".adapters")
        config.include(".jobs")
        config.include(".views")
        # Last: plugins build on every part above.
        config.include(".plugins")
    return config.make_wsgi_app()
