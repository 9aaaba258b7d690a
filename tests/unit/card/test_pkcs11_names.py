"""Which package provides a PKCS#11 module, said by its file name (the module need not exist)."""

import pytest

from app.card.pkcs11 import package_for

VENDOR = "the card vendor's middleware that NHS supplies to your IT department"


@pytest.mark.parametrize(("path", "package"), [
    ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so", "opensc-pkcs11"),
    ("/usr/lib/x86_64-linux-gnu/pkcs11/onepin-opensc-pkcs11.so", "opensc-pkcs11"),
    ("/usr/lib/x86_64-linux-gnu/libykcs11.so.2", "ykcs11"),
    ("/usr/lib/softhsm/libsofthsm2.so", "softhsm2"),
    ("/usr/lib/ClassicClient/libclassicclient.so", VENDOR),
    ("/opt/Oberthur/lib/libOcsCryptoki.so", VENDOR),
    ("/opt/idemia/awp/libidprimepkcs11.so", VENDOR),
    ("/usr/lib/libsomething.so", None),
])
def test_package_for(path, package):
    assert package_for(path) == package
