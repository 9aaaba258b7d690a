"""The PKCS#11 card back-end: cards reached through a vendor's PKCS#11 module (NHS series 8 cards through the
Oberthur/IDEMIA middleware, OpenSC's ``opensc-pkcs11.so``, YubiKey's ``libykcs11.so``; SoftHSM2 in tests).

The only package that imports the PKCS#11 binding (python-pkcs11; ``docs/decisions/pkcs11-binding.md`` says why).
Every PKCS#11 return code is mapped here, and only here, onto the typed errors of :mod:`app.errors`.

* :func:`load_module` loads each module once per process and keeps it for good: finalising a module that another
  part of the process still uses is a classic crash. The binding initialises modules without OS locking, so every
  call into one module is serialised by that module's lock.
* :class:`Pkcs11Backend` is a :class:`app.card.backend.CardBackend`: ``open(reader, atr)`` gives a
  :class:`Pkcs11Token` for the token in the slot whose description names ``reader`` (OpenSC names its slots after
  the PC/SC reader), or for the only token present when ``reader`` is None.
* :class:`Pkcs11Token` is a :class:`app.card.backend.LoginToken`. The login certificate is chosen by what it is
  (X.509, key usage digitalSignature, EKU clientAuth or smartcard logon preferred, a private key with CKA_SIGN and
  the same CKA_ID), never by its label; ties are broken by CKA_ID, then by the certificate's own bytes, and
  :attr:`Pkcs11Token.choice` says why that one won. The PIN lives only for the call that uses it. Forgetting the
  PIN is C_Logout and, for a card in a PC/SC reader, a card reset (OpenSC's C_Logout leaves a PIV card verified).
* :class:`TokenMonitor` reports token insert/remove as :class:`app.card.pcsc.CardEvent`, for slots that PC/SC
  does not see (SoftHSM) or modules used without it. It asks ``C_WaitForSlotEvent`` without blocking (a blocked
  wait could only be ended by finalising the module) every 0.1 s and rescans the slots when it reports an event;
  for modules without it, it rescans the slots every 0.3 s. As tested: OpenSC answers ``C_WaitForSlotEvent``
  (it asks pcscd for the reader state) and reports a pulled card; SoftHSM2 answers it with CKR_NO_EVENT (its tokens
  never come and go while it is loaded); ykcs11 returns CKR_FUNCTION_NOT_SUPPORTED, so its slots are polled.

PIN unblocking is ``C_Login(CKU_SO, PUK)`` then ``C_InitPIN``: SoftHSM2 allows it (with its SO PIN). OpenSC 0.23's
PIV driver refuses the SO login (CKR_GENERAL_ERROR), so a PIV card is unblocked through the PIV back-end (RESET
RETRY COUNTER); that refusal is reported as :class:`app.errors.CardError` saying the module cannot unblock. Vendor
middleware varies and may expect its own tools.
"""

from app.card.pkcs11.loader import load_module, package_for
from app.card.pkcs11.monitor import TokenMonitor
from app.card.pkcs11.token import LOGIN_EKUS, Pkcs11Backend, Pkcs11Token

__all__ = ["LOGIN_EKUS", "Pkcs11Backend", "Pkcs11Token", "TokenMonitor", "load_module", "package_for"]
