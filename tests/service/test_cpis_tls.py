"""CP-IS delivery when the service runs HTTPS with a certificate from a site CA (not in the system trust store):
the deliverer reaches the built-in inbox at the service's own https:// address by trusting the configured CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.pki import TrainingCA
from app.service.cpis import rules
from app.service.runtime import ServiceConfig, build_service
from app.service.server import uvicorn_config
from app.service.storage import open_store

from .cpis_helpers import CpisWorld, add_cpis_people, add_plans, wait_for
from .live import free_port, seed


def site_ca_and_server_cert(where: Path) -> tuple[Path, Path, Path]:
    """A test CA (its own root, in no system store) and a server certificate for 127.0.0.1 that it signed."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Site CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = where / "site-ca.pem", where / "server.pem", where / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_notifications_reach_the_built_in_inbox_over_https_with_a_site_ca(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = site_ca_and_server_cert(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'service.db'}")
    training = TrainingCA.load_or_create(tmp_path / "pki")
    seed(store, training, 60)
    tokens = add_cpis_people(store)
    children = add_plans(store)
    port = free_port()
    config = ServiceConfig(database="unused://", base_url=f"https://127.0.0.1:{port}",
                           training_pki=str(training.directory), tls_ca=str(ca_file))
    service = build_service(config, store=store)
    server = uvicorn.Server(uvicorn_config(service.app, config.limits, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off", ssl_certfile=str(cert_file),
                                           ssl_keyfile=str(key_file)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    world = CpisWorld(config.base_url, store, tokens, children,
                      http=httpx.Client(timeout=30, verify=ssl.create_default_context(cafile=str(ca_file))))
    try:
        nhs = children["cpp"]
        request_id = str(uuid.uuid4())
        assert world.care_team(nhs, "unsched-1", request_id=request_id).status_code == 200
        (made,) = [n for n in store.cpis_notifications(nhs_number=nhs)
                   if n.access_id == rules.access_id("una", request_id.lower())]

        def delivered() -> bool:
            return next(n for n in store.cpis_notifications(nhs_number=nhs) if n.id == made.id).delivered_at \
                is not None

        assert wait_for(delivered), next(n.last_error for n in store.cpis_notifications(nhs_number=nhs)
                                         if n.id == made.id)
        assert [i.id for i in store.cpis_inbox("TLA01", limit=1000)].count(made.id) == 1
    finally:
        world.http.close()
        if service.deliverer is not None:
            service.deliverer.stop()
        server.should_exit = True
        thread.join(10)
        service.audit.close()
        service.context.cpis_writer.close()
        store.close()
