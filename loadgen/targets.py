"""``--expand-dns``: turn each target host into one target per address behind it.

A headless Kubernetes Service resolves to every ready pod's address; targeting each address
spreads the load over the pods and lets the report show each pod on its own.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import urllib.parse
from collections.abc import Callable, Iterable

__all__ = ["expand_targets", "resolve_host", "with_host"]

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every TCP address of ``host`` (IPv4 and IPv6), sorted, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def with_host(url: str, address: str) -> str:
    """``url`` with its host replaced by ``address`` (IPv6 addresses get brackets)."""
    parts = urllib.parse.urlsplit(url)
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def expand_targets(targets: Iterable[str], resolve: Resolver = resolve_host) -> tuple[str, ...]:
    """One target per resolved address, in order; a host that does not resolve stays as is.

    An unresolvable host is kept so that its failures show up in the report as connect
    errors instead of the run silently loading fewer targets.
    """
    expanded: list[str] = []
    for url in targets:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if _is_address(host):
            addresses = [host]
        else:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                addresses = resolve(host, port)
            except OSError as exc:
                log.warning("cannot resolve %s (%s); keeping it as a target", host, exc)
                addresses = []
        candidates = [with_host(url, address) for address in addresses] or [url]
        expanded.extend(c for c in candidates if c not in expanded)
    return tuple(expanded)
