"""A small real DNS server for the tests: UDP on 127.0.0.1, authoritative for what a test puts in it.

- ``records[name] = ["127.0.0.1", "::1"]``: the A/AAAA answers (the outbound-guard tests point
  ``dns_servers`` here, so a name can resolve to loopback; changing the dict between two lookups is
  DNS rebinding).
- :meth:`DnsServer.add` ``(name, value)``: TXT records (the e-mail tests publish SPF, DKIM keys and
  DMARC policies of their domains).

A name in neither answers NXDOMAIN; a known name answers the records of the asked type, or none.
TTLs are 0. Every question is kept in ``queries``. No ``/etc/hosts`` edit, nothing outside the test.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.txt: dict[str, list[str]] = {}
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

    def add(self, name: str, value: str) -> None:
        """Publish a TXT record at ``name``."""
        self.txt.setdefault(name.lower().rstrip("."), []).append(value)

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
        response.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = question.rdtype
            self.queries.append((name, dns.rdatatype.to_text(rdtype)))
            if name not in self.records and name not in self.txt:
                response.set_rcode(dns.rcode.NXDOMAIN)
                continue
            values: list[str] = []
            if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                version = 4 if rdtype == dns.rdatatype.A else 6
                values = [a for a in self.records.get(name, []) if ipaddress.ip_address(a).version == version]
            elif rdtype == dns.rdatatype.TXT:
                values = [_txt(v) for v in self.txt.get(name, [])]
            if values:
                response.answer.append(dns.rrset.from_text_list(question.name, 0, dns.rdataclass.IN, rdtype, values))
        return response


def _txt(value: str) -> str:
    """A TXT value in zone-file form: quoted strings of at most 255 bytes each."""
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
