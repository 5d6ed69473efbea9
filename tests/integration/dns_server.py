"""A tiny real DNS server for outbound-guard tests: UDP on 127.0.0.1, answers from a dict.

Point ``FRONTDESK_OUTBOUND_RESOLVER`` (``Settings.outbound_resolver``) at :attr:`DnsServer.address`
and set ``records["hooks.example.test"] = ["127.0.0.1"]``: the name now resolves to loopback for
Frontdesk, and changing the dict between two lookups is DNS rebinding. No ``/etc/hosts`` edit,
nothing outside the test. Names not in ``records`` answer NXDOMAIN; TTLs are 0.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.queries: list[tuple[str, str]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._sock.getsockname()
        return f"{host}:{port}"

    def start(self) -> DnsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except Exception:
                continue
            self._sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        for question in query.question:
            name = question.name.to_text(omit_final_dot=True).lower()
            self.queries.append((name, dns.rdatatype.to_text(question.rdtype)))
            addresses = self.records.get(name)
            if addresses is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                continue
            version = 4 if question.rdtype == dns.rdatatype.A else 6 if question.rdtype == dns.rdatatype.AAAA else 0
            wanted = [a for a in addresses if ipaddress.ip_address(a).version == version]
            if wanted:
                response.answer.append(
                    dns.rrset.from_text_list(
                        question.name, 0, dns.rdataclass.IN, question.rdtype, [str(a) for a in wanted]
                    )
                )
        return response
