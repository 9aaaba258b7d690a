"""Certificates this machine and this application trust."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from app.config import Mode, Settings
from app.errors import AppError
from wes.probes.facts import AppTrust

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def sha256_hex(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest().upper()


def colon_hex(fingerprint: str) -> str:
    return ":".join(fingerprint[i:i + 2] for i in range(0, len(fingerprint), 2))


def pem_certificates(data: bytes) -> tuple[bytes, ...]:
    """Every certificate in a PEM bundle, as DER (blocks that are not base64 are skipped)."""
    out = []
    for block in _PEM.findall(data):
        try:
            out.append(base64.b64decode(b"".join(block.split()), validate=True))
        except ValueError:
            continue
    return tuple(out)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def app_trust(settings: Settings) -> AppTrust:
    """Training: this machine's training CA (never created by the checker). Production: the site's anchors."""
    if settings.mode is Mode.TRAINING:
        directory = settings.paths.pki_dir
        if not (directory / "root.pem").exists():
            return AppTrust((), (), (), str(directory),
                            error=f"no training CA in {directory} yet (the client creates it on first use)")
        from app.pki import TrainingCA

        try:
            store = TrainingCA.load_or_create(directory).trust_store()
        except AppError as exc:
            return AppTrust((), (), (), str(directory), error=str(exc))
        return AppTrust(tuple(map(_der, store.anchors)), tuple(map(_der, store.intermediates)),
                        tuple(c.public_bytes(Encoding.DER) for c in store.crls), str(directory / "root.pem"),
                        crl_paths=(str(directory / "crl.pem"),) * len(store.crls))
    anchors: list[bytes] = []
    intermediates: list[bytes] = []
    crls: list[bytes] = []
    crl_paths: list[str] = []
    problems: list[str] = []
    for group, paths in ((anchors, settings.trust_anchors), (intermediates, settings.trust_intermediates)):
        for path in paths:
            try:
                group.extend(pem_certificates(Path(path).read_bytes()))
            except OSError as exc:
                problems.append(f"{path}: {exc.strerror or exc}")
    for path in settings.trust_crls:
        try:
            data = Path(path).read_bytes()
            crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
            crls.append(crl.public_bytes(Encoding.DER))
            crl_paths.append(str(path))
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {getattr(exc, 'strerror', None) or exc}")
    source = ", ".join(map(str, settings.trust_anchors)) or "site configuration [trust] anchors"
    return AppTrust(tuple(anchors), tuple(intermediates), tuple(crls), source, error="; ".join(problems),
                    crl_paths=tuple(crl_paths))
