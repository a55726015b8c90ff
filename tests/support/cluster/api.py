"""A small JSON client for the test control plane (urllib and TLS client certificates).

The cluster kit's own components (the test kubelet, the cluster DNS) use it; tests use kubectl
or the ``kubernetes`` client as users and the operator do.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.support.errors import SupportError

__all__ = ["MERGE", "STRATEGIC", "Api", "ApiError"]

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


class ApiError(SupportError):
    """The API server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass
class Api:
    """The API server at ``server``, as the holder of ``cert``/``key``."""

    server: str
    ca: str
    cert: str
    key: str
    timeout: float = 15.0

    def __post_init__(self) -> None:
        self._context = ssl.create_default_context(cafile=self.ca)
        self._context.load_cert_chain(self.cert, self.key)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> Any:
        """One request; the decoded JSON answer, or ApiError with the server's message."""
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("message", detail)
            raise ApiError(exc.code, detail) from None
        return json.loads(raw) if raw else None

    def get(self, path: str, **query: str) -> Any:
        """GET ``path``; None when it does not exist."""
        try:
            return self.call("GET", path, query=query or None)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
