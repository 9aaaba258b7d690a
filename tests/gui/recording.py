"""The recorded exchanges of the fast GUI tier: how a request is keyed, how an exchange is stored and replayed.

One exchange = one JSON file under ``tests/gui/recorded/`` holding ``{"key": ..., "status": ..., "etag": ...,
"body": ...}``: the key is what identifies the request (method, path, query, the role it was made in, the headers
that change the answer, and the JSON body without its volatile parts); the rest is the service's answer verbatim.
Login requests (challenge, session) are keyed by the card holder's name, since their bodies (certificate, nonce,
signature) differ with every card and every run. ``record.py`` writes the files; ``fakes.FakeSpine`` reads them.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography import x509
from cryptography.x509.oid import NameOID

from app.protocol import AUTH_CHALLENGE_PATH, AUTH_SESSION_PATH, HEADER_URID

RECORDED = Path(__file__).resolve().parent / "recorded"
BASE_URL = "http://spine.test"  # the recorded service's loopback address, written as this in the files
LOGIN_PATHS = (AUTH_CHALLENGE_PATH, AUTH_SESSION_PATH)
ANSWER_HEADERS = ("isunscheduledaccessevent", "if-match")  # request headers that change the service's answer
VOLATILE_BODY = ("recorded",)  # an AuditEvent's clock time
CARD_PIN = "24681357"  # the test cards' PIN (test cards only; the recordings never hold it)


def holder_name(certificate_b64: str) -> str:
    cert = x509.load_der_x509_certificate(base64.b64decode(certificate_b64))
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def request_key(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """What identifies a request, from its parts as sent on the wire (``headers`` with lower-case names)."""
    key: dict[str, Any] = {"method": method.upper(), "path": path}
    doc = json.loads(body) if body else None
    if path in LOGIN_PATHS and isinstance(doc, dict) and "certificate" in doc:
        key["user"] = holder_name(doc["certificate"])
        return key
    if query:
        key["query"] = [list(pair) for pair in parse_qsl(query, keep_blank_values=True)]
    if urid := headers.get(HEADER_URID.lower()):
        key["urid"] = urid
    for name in ANSWER_HEADERS:
        if name in headers:
            key[name] = headers[name]
    if isinstance(doc, dict):
        key["body"] = {k: v for k, v in doc.items() if k not in VOLATILE_BODY}
    elif doc is not None:
        key["body"] = doc
    return key


def key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def file_name(key: dict[str, Any], taken: set[str]) -> str:
    """A readable, unique file name for an exchange: method, path, then the first distinguishing detail."""
    detail = key.get("user") or (key.get("query") or [["", ""]])[0][1] or ""
    stem = "-".join(p for p in (key["method"].lower(), key["path"].strip("/"), key.get("urid", ""), detail) if p)
    stem = re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-")[:120]
    name, n = f"{stem}.json", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.json"
    taken.add(name)
    return name


def load_all(folder: Path = RECORDED) -> dict[str, dict[str, Any]]:
    """Every recorded exchange by its key's text."""
    exchanges: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "key" in doc:
            exchanges[key_text(doc["key"])] = doc
    return exchanges
