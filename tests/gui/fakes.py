"""The fast tier's fake ports: the service answered from recordings, the card from the in-process PIV applet.

* :class:`FakeSpine` is an ``app.client.api.SpineApi``. It runs the real ``SpineClient`` over a replay transport,
  so the client's own parsing and error typing (``ServiceRejected`` from an OperationOutcome) are what the window
  gets; the answers are the recorded ones (``tests/gui/recorded``, written by ``tests/gui/record.py``). A request
  nothing recorded raises :class:`UnexpectedRequest` naming it, and is kept in ``unexpected`` (the fixture fails the
  test for it even when the window swallowed the error). ``dead = True`` makes every call raise the client's
  ``ServiceUnreachable``, as a stopped service does. The login signature is verified against the card certificate.
* :class:`FakeCards` is an ``app.ui.ports.CardAccess`` over ``app.card.virtual.PivApplet`` (no pcscd): the real
  chooser, PIV back-end and ``PivSession``/``PivLoginCard`` code talk APDUs to it; the test inserts and pulls
  cards (monitor events) and the certificate is checked by the real ``app.pki.validate`` against the test CA.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app.client.client import SpineClient
from app.errors import CardRemoved, CertificateRejected, NoCard, ServiceUnreachable
from app.protocol import AUTH_CHALLENGE_PATH, AUTH_SESSION_PATH, login_message
from app.ui.ports import CARD_INSERTED, CARD_REMOVED, READER_ADDED, ReaderEvent
from tests.gui.recording import BASE_URL, holder_name, key_text, load_all, request_key

READER = "Virtual PCD 00 00"


class UnexpectedRequest(AssertionError):
    """The window made a request that nothing recorded: record it (tests/gui/record.py) or fix the call."""


class FakeSpine:
    """``SpineApi`` answering from the recorded exchanges."""

    def __init__(self, exchanges: dict[str, dict[str, Any]] | None = None) -> None:
        self.base_url = BASE_URL
        self.exchanges = load_all() if exchanges is None else exchanges
        self.requests: list[dict[str, Any]] = []
        self.unexpected: list[dict[str, Any]] = []
        self.dead = False
        self._held: list[tuple[str, threading.Event]] = []
        self._lock = threading.Lock()
        self._client = SpineClient(BASE_URL, httpx.Client(transport=httpx.MockTransport(self._replay)))

    # --- the port -----------------------------------------------------------------------------------------

    def challenge(self, certificate_der: bytes) -> Any:
        self._alive()
        return self._client.challenge(certificate_der)

    def complete(self, nonce: str, signature: bytes, certificate_der: bytes, urid: str | None = None) -> Any:
        self._alive()
        return self._client.complete(nonce, signature, certificate_der, urid)

    def select_role(self, token: str, urid: str) -> Any:
        self._alive()
        return self._client.select_role(token, urid)

    def logout(self, token: str) -> None:
        self._alive()
        self._client.logout(token)

    def fhir(self, method: str, path: str, auth: Any, *, params: list[tuple[str, str]] | None = None,
             body: Any = None, headers: dict[str, str] | None = None) -> tuple[Any, str | None]:
        self._alive()
        return self._client.fhir(method, path, auth, params=params, body=body, headers=headers)

    # --- what the tests look at ---------------------------------------------------------------------------

    def made(self, method: str, path_part: str) -> list[dict[str, Any]]:
        """The requests made so far with this method whose path contains ``path_part``."""
        with self._lock:
            return [k for k in self.requests if k["method"] == method and path_part in k["path"]]

    def hold(self, path_part: str) -> threading.Event:
        """Answers to requests whose path contains ``path_part`` wait until the returned event is set (a slow
        service, for ordering tests); ``close`` releases whatever is still held."""
        event = threading.Event()
        with self._lock:
            self._held.append((path_part, event))
        return event

    def close(self) -> None:
        with self._lock:
            for _, event in self._held:
                event.set()
        self._client._http.close()

    # --- replay -------------------------------------------------------------------------------------------

    def _alive(self) -> None:
        if self.dead:
            raise ServiceUnreachable(self.base_url, "connection refused or no route")

    def _replay(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        key = request_key(request.method, request.url.path, request.url.query.decode("ascii"),
                          {k.lower(): v for k, v in request.headers.items()}, body)
        with self._lock:
            self.requests.append(key)
        with self._lock:
            waits = [event for part, event in self._held if part in key["path"]]
        for event in waits:
            if not event.wait(60):
                raise UnexpectedRequest(f"held and never released: {key_text(key)}")
        found = self.exchanges.get(key_text(key))
        if found is None:
            with self._lock:
                self.unexpected.append(key)
            raise UnexpectedRequest(f"no recorded answer for {key_text(key)}")
        if key["path"] == AUTH_SESSION_PATH and key["method"] == "POST":
            self._check_signature(json.loads(body), key)
        return httpx.Response(found["status"], json=found["body"], headers={"etag": found["etag"]}
                              if found["etag"] else None) if found["body"] is not None \
            else httpx.Response(found["status"])

    def _check_signature(self, doc: dict[str, Any], key: dict[str, Any]) -> None:
        """As the service does: the nonce is the one handed out, signed by the certificate's key for this service."""
        challenge = self.exchanges.get(key_text({"method": "POST", "path": AUTH_CHALLENGE_PATH,
                                                 "user": holder_name(doc["certificate"])}))
        if challenge is None or challenge["body"]["nonce"] != doc["nonce"]:
            raise UnexpectedRequest(f"a session for a nonce that was not handed out: {key_text(key)}")
        cert = x509.load_der_x509_certificate(base64.b64decode(doc["certificate"]))
        public, signature = cert.public_key(), base64.b64decode(doc["signature"])
        message = login_message(doc["nonce"], BASE_URL)
        try:
            if isinstance(public, rsa.RSAPublicKey):
                public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(public, ec.EllipticCurvePublicKey):
                public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            else:
                raise UnexpectedRequest("a card key of an unknown kind")
        except InvalidSignature:
            raise UnexpectedRequest("the card's signature over the challenge does not verify") from None


class AppletLink:
    """One connection to the applet in a reader; a pulled card answers nothing (``CardRemoved``)."""

    def __init__(self, cards: FakeCards, reader: str, applet: Any) -> None:
        self.cards, self.reader, self.applet = cards, reader, applet

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if self.cards.applets.get(self.reader) is not self.applet:
            raise CardRemoved(f"the card was removed from {self.reader}")
        raw = self.applet.process(apdu)
        return raw[:-2], int.from_bytes(raw[-2:], "big")

    def close(self, reset: bool = False) -> None:
        if reset and self.cards.applets.get(self.reader) is self.applet:
            self.applet.reset()


class FakeCards:
    """``CardAccess``: one reader; ``insert``/``remove`` are the card going in and out (monitor events)."""

    def __init__(self, trust: Any, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.trust, self.now = trust, now
        self.applets: dict[str, Any] = {}
        self._callback: Callable[[ReaderEvent], None] | None = None

    def connect(self, reader: str | None) -> AppletLink:
        reader = reader or next(iter(self.applets), None)
        applet = self.applets.get(reader) if reader else None
        if reader is None or applet is None:
            raise NoCard(reader or "the reader")
        return AppletLink(self, reader, applet)

    def open(self, reader: str | None) -> Any:
        """The card through the real chooser and PIV back-end, over the applet link."""
        from app.card.chooser import PivBackend, open_login_token

        return open_login_token([PivBackend(self.connect)], reader)

    def start_monitor(self, callback: Callable[[ReaderEvent], None]) -> Callable[[], None]:
        self._callback = callback
        callback(ReaderEvent(READER_ADDED, READER))
        for reader in self.applets:
            callback(ReaderEvent(CARD_INSERTED, reader))

        def stop() -> None:
            self._callback = None

        return stop

    def check_certificate(self, certificate_der: bytes) -> int | None:
        from app.pki import load_certificate, validate

        verdict = validate(load_certificate(certificate_der), self.trust, now=self.now())
        if not verdict.ok:
            raise CertificateRejected(verdict.status.value, verdict.detail)
        return verdict.days_until_expiry

    def insert(self, applet: Any, reader: str = READER) -> None:
        applet.power_on()
        self.applets[reader] = applet
        if self._callback is not None:
            self._callback(ReaderEvent(CARD_INSERTED, reader))

    def remove(self, reader: str = READER) -> None:
        applet = self.applets.pop(reader, None)
        if applet is not None:
            applet.power_off()
        if self._callback is not None:
            self._callback(ReaderEvent(CARD_REMOVED, reader))


class FakeTrainingCard:
    """``app.ui.ports.TrainingCard``: the training card the Training menu puts in and pulls out."""

    def __init__(self, cards: FakeCards, applet: Any, pin: str) -> None:
        self.cards, self.applet, self.pin = cards, applet, pin

    def insert(self) -> None:
        self.cards.insert(self.applet)

    def remove(self) -> None:
        self.cards.remove()
