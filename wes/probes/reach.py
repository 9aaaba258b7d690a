"""Whether TCP ports of this machine answer connections from the network, tried without privileges.

For each address of this machine other than loopback, a socket bound to that address connects to the same address:
the SYN never leaves the machine (it goes through the loopback interface) but its source is the external address,
as for a packet from another machine, so a host firewall that admits only loopback sources to the port drops it and
the attempt times out. No connection is made from loopback: a program that accepts one connection at a time (vpcd
while it serves a card) would keep it waiting in its accept queue, and a full queue leaves later attempts unanswered
too; the check reads the queue from the listening sockets instead. All attempts run at once with non-blocking
sockets and share one deadline; a connection made is closed at once.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Iterable

from wes.probes.facts import CONNECTED, FAILED, REFUSED, TIMEOUT, ConnectAttempt, LocalAddress

REACH_TIMEOUT = 0.3  # s: a connect through loopback is answered in well under a millisecond unless dropped
_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY, 10035}  # 10035: Windows' WSAEWOULDBLOCK
_REFUSED = {errno.ECONNREFUSED, 10061}  # 10061: Windows' WSAECONNREFUSED


def _result(code: int) -> tuple[str, str]:
    if code == 0:
        return CONNECTED, ""
    if code in _REFUSED:
        return REFUSED, ""
    return FAILED, errno.errorcode.get(code, str(code))


def connect_attempts(targets: Iterable[tuple[LocalAddress, int]], *, timeout: float = REACH_TIMEOUT
                     ) -> tuple[ConnectAttempt, ...]:
    """Connect to each (address, port) from a socket bound to that address; in the order given."""
    targets = list(targets)
    results: dict[int, ConnectAttempt] = {}
    pending: dict[socket.socket, int] = {}
    selector = selectors.DefaultSelector()
    try:
        for i, (local, port) in enumerate(targets):
            v6 = ":" in local.address
            sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                if v6:
                    sock.bind((local.address, 0, 0, local.scope_id))
                    code = sock.connect_ex((local.address, port, 0, local.scope_id))
                else:
                    sock.bind((local.address, 0))
                    code = sock.connect_ex((local.address, port))
            except OSError as exc:  # the address cannot be a source (gone, tentative): nothing was tried
                results[i] = ConnectAttempt(str(local), port, FAILED, exc.strerror or str(exc))
                sock.close()
                continue
            if code in _IN_PROGRESS:
                pending[sock] = i
                selector.register(sock, selectors.EVENT_WRITE, data=sock)
                continue
            results[i] = ConnectAttempt(str(local), port, *_result(code))
            sock.close()
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in selector.select(left):
                sock = key.data
                i = pending.pop(sock)
                selector.unregister(sock)
                local, port = targets[i]
                results[i] = ConnectAttempt(str(local), port, *_result(sock.getsockopt(socket.SOL_SOCKET,
                                                                                         socket.SO_ERROR)))
                sock.close()
        for sock, i in pending.items():
            local, port = targets[i]
            results[i] = ConnectAttempt(str(local), port, TIMEOUT, f"no answer within {timeout:g} s")
            sock.close()
    finally:
        selector.close()
    return tuple(results[i] for i in range(len(targets)))


def reach(addresses: Iterable[LocalAddress], ports: Iterable[int], *, timeout: float = REACH_TIMEOUT
          ) -> tuple[ConnectAttempt, ...]:
    """Every port from every address, all at once."""
    ports = tuple(ports)
    return connect_attempts([(a, p) for a in addresses for p in ports], timeout=timeout)
