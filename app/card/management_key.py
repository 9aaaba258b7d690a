"""PIV card management keys (key reference 9B, SP 800-73-4 Part 2 §3.2.4 and SP 800-78-4 Table 5): the symmetric key
that must be proven before a card generates a key pair or stores a data object.

Proof is challenge-response ("external authentication" of the client): the card hands out a random block, the
client returns it encrypted under the management key (one block, ECB), the card compares. Both ends use this
module: the training card (``app.card.virtual``) to check, the PIV client (``app.card.piv``) to answer.

A real card's management key belongs to its issuer (for NHS cards, the registration authority's card management
system); Spine Desk is given one only for training cards, whose card file holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ALG_3DES = 0x03
ALG_AES128 = 0x08
NAMES = {"3des": ALG_3DES, "aes128": ALG_AES128}
KEY_LENGTHS = {ALG_3DES: 24, ALG_AES128: 16}
BLOCK_SIZES = {0x00: 8, ALG_3DES: 8, ALG_AES128: 16, 0x0A: 16, 0x0C: 16}  # 00: "3DES" on older clients

# The well-known PIV factory default (01 02 … 08 repeated), used by the training cards Spine Desk issues: a training
# card file holds its private key in clear anyway, so a secret management key would protect nothing there.
TRAINING_KEY_BYTES = bytes(range(1, 9)) * 3


@dataclass(frozen=True, slots=True)
class ManagementKey:
    algorithm: int  # ALG_3DES or ALG_AES128
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.algorithm not in KEY_LENGTHS:
            raise ValueError(f"management key algorithm {self.algorithm:#04x} is neither 3DES (03) nor AES-128 (08)")
        if len(self.key) != KEY_LENGTHS[self.algorithm]:
            raise ValueError(f"a {self.name} management key has {KEY_LENGTHS[self.algorithm]} bytes, "
                             f"not {len(self.key)}")

    @classmethod
    def named(cls, name: str, key: bytes) -> ManagementKey:
        if name not in NAMES:
            raise ValueError(f"management key algorithm must be one of {', '.join(NAMES)}, not {name!r}")
        return cls(NAMES[name], key)

    @classmethod
    def training(cls) -> ManagementKey:
        """The management key of the training cards Spine Desk issues (AES-128)."""
        return cls(ALG_AES128, TRAINING_KEY_BYTES[:16])

    @property
    def name(self) -> str:
        return "3des" if self.algorithm == ALG_3DES else "aes128"

    @property
    def block_size(self) -> int:
        return BLOCK_SIZES[self.algorithm]

    def encrypt_block(self, block: bytes) -> bytes:
        """One block encrypted in ECB mode (the PIV card-management challenge response)."""
        if len(block) != self.block_size:
            raise ValueError(f"a {self.name} block has {self.block_size} bytes")
        cipher = TripleDES(self.key) if self.algorithm == ALG_3DES else algorithms.AES(self.key)
        encryptor = Cipher(cipher, modes.ECB()).encryptor()  # noqa: S305 - one block, as PIV specifies
        return encryptor.update(block) + encryptor.finalize()
