"""Loading PKCS#11 modules: once per process, never finalised, each with the lock that serialises calls into it."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import exceptions as p11

from app.errors import Pkcs11ModuleError

_VENDOR = "the card vendor's middleware that NHS supplies to your IT department"
_PACKAGES = {"opensc-pkcs11.so": "opensc-pkcs11", "onepin-opensc-pkcs11.so": "opensc-pkcs11",
             "libykcs11.so": "ykcs11", "libsofthsm2.so": "softhsm2", "libclassicclient.so": _VENDOR}


def package_for(path: str) -> str | None:
    """What provides a PKCS#11 module: a Debian package name, a sentence for vendor middleware, or None."""
    name = Path(path).name
    base = name.split(".so")[0] + ".so" if ".so" in name else name
    if base in _PACKAGES:
        return _PACKAGES[base]
    if any(v in os.fspath(path).lower() for v in ("oberthur", "idemia", "classicclient", "awp")):
        return _VENDOR
    return None


@dataclass
class LoadedModule:
    path: str
    lib: Any
    lock: threading.RLock


_modules: dict[str, LoadedModule] = {}
_modules_lock = threading.Lock()


def load_module(path: str | os.PathLike[str]) -> LoadedModule:
    """The loaded module at ``path`` (loaded and initialised on first use, then kept for the process's life)."""
    key = os.fspath(path)
    with _modules_lock:
        module = _modules.get(key)
        if module is not None:
            return module
        package = package_for(key)
        if not os.path.exists(key):
            raise Pkcs11ModuleError(key, "the file does not exist", package)
        try:
            lib = pkcs11.lib(key)
        except p11.PKCS11Error as exc:
            text = str(exc)
            if "C_GetFunctionList" in text:
                problem = "it is not a PKCS#11 module (it has no C_GetFunctionList)"
            else:
                problem = f"it cannot be loaded ({text.rsplit(': ', 1)[-1] or type(exc).__name__})"
            raise Pkcs11ModuleError(key, problem, package) from None
        module = _modules[key] = LoadedModule(key, lib, threading.RLock())
        return module
