"""Who may talk to the server, and how much they may send.

Checked before any route runs, in this order:

1. **Host allow-list** (DNS rebinding): the ``Host`` header must name the
   bound address, ``localhost``, ``127.0.0.1`` or ``[::1]``, or one of
   ``ALLOWED_HOSTS`` (``deepviz serve --allowed-host``); else 421.
2. **Token**, when one is set: from ``?token=``, an ``Authorization: token <t>``
   header or the cookie set on the first good request; else 403. ``deepviz
   serve`` sets one whenever it binds to anything but loopback.
3. **Same origin for state-changing requests** (POST, PUT, PATCH, DELETE): a
   browser's ``Sec-Fetch-Site`` must be ``same-origin`` or ``none``, and an
   ``Origin`` must be this server's own; else 403. Clients that send neither
   (curl, scripts) are not browsers another site can drive.
4. **Body size**, from ``Content-Length`` before a byte of the body is read:
   more than ``MAX_CONTENT_LENGTH`` gets 413. (Waitress, which buffers bodies
   before the app sees them, is capped at the same size by ``webui.server``.)

Every response says ``Referrer-Policy: no-referrer`` (the token in a URL never
leaks) and may not be framed, except by the origins in ``FRAME_ANCESTORS``
(``deepviz.notebook``: loopback pages, the notebook's own). The token cookie is named after the port, so two
servers on one host never overwrite or receive each other's by name, and it is
HttpOnly, SameSite=Strict, Path=/.
"""

from __future__ import annotations

import hmac

from flask import Flask, request

from .errors import error_response

COOKIE = "deepviz_token"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def cookie_name() -> str:
    return f"{COOKIE}_{request.environ.get('SERVER_PORT', '80')}"


def _given() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("token "):
        return auth[6:].strip()
    return request.args.get("token") or request.cookies.get(cookie_name())


def _hostname(host: str) -> str:
    """``Host`` without its port, lower case (``[::1]:5000`` -> ``[::1]``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _name(host: str) -> str:
    """An allowed name as a Host header spells it: lower case, IPv6 in brackets."""
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(config) -> set[str]:
    return {_name(h) for h in (*LOCAL_HOSTS, *(config.get("ALLOWED_HOSTS") or ()))}


def _check_host(app: Flask):
    given = request.headers.get("Host", "")
    if _hostname(given) in app.extensions["deepviz_hosts"]:
        return None
    return error_response(
        f"Refused: this server does not answer for Host {given[:100]!r}. Allowed: "
        f"{', '.join(sorted(app.extensions['deepviz_hosts']))}. Open it by one of those names, or start it with "
        "`deepviz serve --allowed-host NAME`.", 421)


def _check_token(app: Flask):
    token = app.config.get("TOKEN")
    if not token:
        return None
    given = _given()
    if given is None or not hmac.compare_digest(given.encode(), token.encode()):
        return error_response("A valid access token is required: open the URL that `deepviz serve` printed (it ends in ?token=...).", 403)
    return None


def _check_origin():
    if request.method not in UNSAFE_METHODS:
        return None
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return error_response(
            f"Refused: a {request.method} from another site (Sec-Fetch-Site: {site[:30]}). Changes are accepted "
            "only from this server's own pages.", 403)
    origin = request.headers.get("Origin")
    own = f"{request.scheme}://{request.host}"
    if origin is not None and origin.lower() != own.lower():
        return error_response(
            f"Refused: a {request.method} from origin {origin[:100]!r}, not this server ({own}). Changes are "
            "accepted only from this server's own pages.", 403)
    return None


def _check_size(app: Flask):
    limit = app.config["MAX_CONTENT_LENGTH"]
    length = request.content_length
    if length is not None and length > limit:
        return error_response(f"The request body is {length:,} bytes; at most {limit:,} are accepted.", 413)
    return None


def register(app: Flask) -> None:
    app.extensions["deepviz_hosts"] = allowed_hosts(app.config)

    @app.before_request
    def _guard():
        for check in (_check_host, _check_token):
            refused = check(app)
            if refused is not None:
                return refused
        return _check_origin() or _check_size(app)

    @app.after_request
    def _headers(response):
        token = app.config.get("TOKEN")
        if token and request.args.get("token") == token:
            response.set_cookie(cookie_name(), token, httponly=True, samesite="Strict", path="/")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers["Referrer-Policy"] = "no-referrer"
        ancestors = " ".join(app.config["FRAME_ANCESTORS"]) or "'none'"
        if ancestors == "'none'":
            response.headers["X-Frame-Options"] = "DENY"  # it has no "these origins" form
        response.headers["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
        return response
