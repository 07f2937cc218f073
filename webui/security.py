"""Access control: a token is required on every route when one is set.

``deepviz serve`` sets one whenever it binds to anything but loopback. The
token is accepted from ``?token=``, an ``Authorization: token <t>`` header or
the cookie set on the first good request, so links and static files work.
"""

from __future__ import annotations

import hmac

from flask import Flask, request

from .errors import error_response

COOKIE = "deepviz_token"


def _given() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("token "):
        return auth[6:].strip()
    return request.args.get("token") or request.cookies.get(COOKIE)


def register(app: Flask) -> None:
    @app.before_request
    def _check_token():
        token = app.config.get("TOKEN")
        if not token:
            return None
        given = _given()
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            return error_response("A valid access token is required: open the URL that `deepviz serve` printed (it ends in ?token=...).", 403)
        return None

    @app.after_request
    def _remember(response):
        token = app.config.get("TOKEN")
        if token and request.args.get("token") == token:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
