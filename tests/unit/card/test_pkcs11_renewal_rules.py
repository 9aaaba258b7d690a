"""Which PKCS#11 tokens Spine Desk renews itself: the rule over a token's flags and its key-pair generation
mechanisms (the binding's own MechanismInfo values, as a module reports them)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Mechanism, MechanismFlag, TokenFlag
from pkcs11.types import MechanismInfo

from app.card.pkcs11.renewal import renewal_refusal

RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
P256 = ec.generate_private_key(ec.SECP256R1()).public_key()
P384 = ec.generate_private_key(ec.SECP384R1()).public_key()
FLAGS = TokenFlag.LOGIN_REQUIRED | TokenFlag.USER_PIN_INITIALIZED | TokenFlag.TOKEN_INITIALIZED


def gen(mechanism: Mechanism, low: int, high: int, flags: MechanismFlag = MechanismFlag.GENERATE_KEY_PAIR) -> dict:
    return {mechanism: MechanismInfo(None, mechanism, low, high, int(flags))}  # no slot needed


SOFTHSM = {**gen(Mechanism.RSA_PKCS_KEY_PAIR_GEN, 512, 16384), **gen(Mechanism.EC_KEY_PAIR_GEN, 112, 521)}


@pytest.mark.parametrize("key", [RSA, P256])
def test_a_writable_token_that_generates_the_key_type_renews(key):
    assert renewal_refusal(FLAGS, SOFTHSM, key) is None


@pytest.mark.parametrize(("flags", "mechanisms", "key", "why"), [
    (FLAGS | TokenFlag.WRITE_PROTECTED, SOFTHSM, RSA, "write-protected"),
    (FLAGS, {}, RSA, "does not generate key pairs"),  # OpenSC's PIV driver
    (FLAGS, gen(Mechanism.RSA_PKCS_KEY_PAIR_GEN, 1024, 2048), P256, "does not generate key pairs"),
    (FLAGS, gen(Mechanism.RSA_PKCS_KEY_PAIR_GEN, 1024, 1024), RSA, "RSA-2048 keys (it makes 1024 to 1024 bits)"),
    (FLAGS, gen(Mechanism.EC_KEY_PAIR_GEN, 256, 256, MechanismFlag.SIGN), P256, "does not generate key pairs"),
    (FLAGS, SOFTHSM, P384, "RSA and P-256 login keys only"),
])
def test_what_stops_a_token_renewing_itself(flags, mechanisms, key, why):
    assert why in (renewal_refusal(flags, mechanisms, key) or "")
