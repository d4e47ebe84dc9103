"""API documentation: the OpenAPI document at ``/api/openapi.json`` and Swagger UI at
``/api/docs``, its assets served from the installed ``swagger_ui_bundle`` package (no CDN).

These are plain Pyramid views, not Cornice services, so they do not describe themselves.
"""

import hashlib
import json
import threading

from pyramid.response import Response
from swagger_ui_bundle import swagger_ui_path

from ticketing.openapi import build_document

DOCUMENT_KEY = "openapi_document"
STATIC_NAME = "api/docs/static"
SWAGGER_UI = str(swagger_ui_path)

# Everything from this origin: a page that tried to load a script or style from elsewhere (a
# CDN) would be refused by the browser.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Ticketing API</title>
  <link rel="stylesheet" href="{css}">
  <link rel="icon" type="image/png" href="{icon}">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec}"></div>
  <script src="{bundle}"></script>
  <script src="{init}"></script>
</body>
</html>
"""

# validatorUrl null: Swagger UI would otherwise send the document to an online validator.
INITIALIZER = """window.addEventListener("load", function () {
  var element = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: element.dataset.specUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    validatorUrl: null
  });
});
"""


_generating = threading.Lock()


def openapi_json(request):
    body, etag = document_of(request.registry)
    response = Response(
        body=body, content_type="application/json", charset="utf-8", conditional_response=True
    )
    response.etag = etag
    response.cache_control = "no-cache"
    return response


def docs_page(request):
    def asset(name):
        return request.static_path(f"{SWAGGER_UI}/{name}")

    html = PAGE.format(
        css=asset("swagger-ui.css"),
        icon=asset("favicon-32x32.png"),
        bundle=asset("swagger-ui-bundle.js"),
        init=request.route_path("api_docs_init"),
        spec=request.route_path("openapi"),
    )
    response = Response(html, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def docs_initializer(request):
    response = Response(INITIALIZER, content_type="text/javascript", charset="utf-8")
    response.cache_control = "no-cache"
    return response


def document_of(registry):
    """The app's document, serialized, with its ETag: built once, at the first request for it
    (building it for every app the tests make would cost more than it is worth)."""
    cached = registry.get(DOCUMENT_KEY)
    if cached is None:
        with _generating:
            cached = registry.get(DOCUMENT_KEY)
            if cached is None:
                body = json.dumps(build_document(registry), indent=2).encode()
                cached = registry[DOCUMENT_KEY] = (body, hashlib.sha256(body).hexdigest()[:32])
    return cached


def includeme(config):
    config.add_route("openapi", "/api/openapi.json")
    config.add_view(openapi_json, route_name="openapi", request_method=("GET", "HEAD"))
    config.add_route("api_docs", "/api/docs")
    config.add_view(docs_page, route_name="api_docs", request_method=("GET", "HEAD"))
    config.add_route("api_docs_init", "/api/docs/init.js")
    config.add_view(docs_initializer, route_name="api_docs_init", request_method=("GET", "HEAD"))
    config.add_static_view(STATIC_NAME, SWAGGER_UI, cache_max_age=86400)
