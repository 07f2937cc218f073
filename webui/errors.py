"""One JSON error shape for every API response: ``{"ok": false, "error": msg, "status": N}``."""

from __future__ import annotations

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from deepviz.errors import ConfigurationError, CorruptDataError, NotFoundError, QueryError, SchemaVersionError


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def error_response(message: str, status: int):
    response = jsonify({"ok": False, "error": message, "status": status})
    response.status_code = status
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api(exc: ApiError):
        return error_response(exc.message, exc.status)

    @app.errorhandler(NotFoundError)
    def _not_found(exc):
        return error_response(str(exc), 404)

    @app.errorhandler(ConfigurationError)
    @app.errorhandler(QueryError)
    def _bad_request(exc):
        return error_response(str(exc), 400)

    @app.errorhandler(CorruptDataError)
    @app.errorhandler(SchemaVersionError)
    def _data(exc):
        return error_response(str(exc), 500)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if request.path.startswith("/api/") or exc.code != 404:
            return error_response(exc.description or exc.name, exc.code or 500)
        return error_response(f"No page at {request.path}.", 404)

    @app.errorhandler(Exception)
    def _unexpected(exc):  # pragma: no cover - the fuzz tests make sure this stays rare
        app.logger.exception("unhandled error on %s", request.path)
        return error_response(f"Internal error: {type(exc).__name__}: {exc}", 500)
