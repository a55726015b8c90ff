"""The cluster DNS of the test tier: Service names answered from the real API server.

What CoreDNS's ``kubernetes`` plugin does, for the names NodeLab uses: ``<svc>.<ns>.svc.<domain>``
resolves to the Service's ClusterIP, or, for a headless Service, to the addresses of its ready
endpoints in EndpointSlices written by the real EndpointSlice controller. Everything else is
NXDOMAIN (there is no upstream: the pods' network ends at the bridge). Answers are read from
the API on each query, so they are never staler than the endpoint controller itself.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Any

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from tests.support.cluster.api import Api, ApiError

__all__ = ["ClusterDns", "resolve"]

log = logging.getLogger(__name__)
_TTL = 5


def resolve(api: Api, name: str, domain: str = "cluster.local") -> list[str] | None:
    """Addresses of a Service name, [] for a name with no ready endpoint, None if unknown."""
    labels = name.lower().rstrip(".").split(".")
    suffix = ["svc", *domain.split(".")]
    if len(labels) != 2 + len(suffix) or labels[2:] != suffix:
        return None
    service, namespace = labels[0], labels[1]
    found: Any = api.get(f"/api/v1/namespaces/{namespace}/services/{service}")
    if found is None:
        return None
    cluster_ip = (found.get("spec") or {}).get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        return [cluster_ip]
    slices = api.get(
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
        labelSelector=f"kubernetes.io/service-name={service}",
    )
    addresses: list[str] = []
    for item in (slices or {}).get("items", []):
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            addresses.extend(endpoint.get("addresses") or [])
    return sorted(set(addresses))


class ClusterDns:
    """A UDP DNS server on ``address``:53 answering from the API server."""

    def __init__(self, api: Api, address: str, port: int = 53) -> None:
        self.api = api
        self.address = address
        self.port = port
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((address, port))
        self._sock.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="cluster-dns", daemon=True)
        self.queries = 0

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                packet, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(Exception):  # a bad packet must not stop the server
                self._sock.sendto(self.answer(packet), peer)

    def answer(self, packet: bytes) -> bytes:
        """The DNS answer to one query packet."""
        self.queries += 1
        request = DNSRecord.parse(packet)
        reply = request.reply()
        question = request.q
        name = str(question.qname)
        try:
            addresses = resolve(self.api, name)
        except (ApiError, OSError) as exc:
            log.warning("cluster DNS: %s: %s", name, exc)
            reply.header.rcode = RCODE.SERVFAIL
            return bytes(reply.pack())
        if addresses is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif question.qtype in (QTYPE.A, QTYPE.ANY):
            for address in addresses:
                reply.add_answer(RR(name, QTYPE.A, rdata=A(address), ttl=_TTL))
        elif question.qtype == QTYPE.AAAA:
            pass  # no IPv6 in the pod network: NOERROR with no records
        return bytes(reply.pack())
