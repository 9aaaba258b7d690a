"""Reasonable Adjustment Flags (NHS England's Patient Flags model): reading them, typed (writes: ``flag_edit``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.client.api import SpineApi
from app.client.models import Auth
from app.protocol import FLAGS_BASE, NHS_NUMBER_SYSTEM


@dataclass(frozen=True, slots=True)
class Adjustment:
    category: str
    text: str
    note: str


@dataclass(frozen=True, slots=True)
class RaFlag:
    status: str
    since: datetime | None
    recorded_by: str
    organisation: str
    withheld: bool  # the role may know the flag exists, not what it says
    impairments: tuple[tuple[str, str], ...] = ()  # (impairment, note)
    adjustments: tuple[Adjustment, ...] = ()
    consent: str = ""
    notes: str = ""
    flag_id: str = ""

    @property
    def active(self) -> bool:
        return self.status == "active"


def _display(concept: dict[str, Any] | None) -> str:
    concept = concept or {}
    coding = (concept.get("coding") or [{}])[0]
    return str(concept.get("text") or coding.get("display") or coding.get("code") or "")


def _annotation(items: list[dict[str, Any]] | None, url_end: str = "") -> str:
    for ext in items or ():
        if (not url_end or str(ext.get("url", "")).endswith(url_end)) and "valueAnnotation" in ext:
            return str(ext["valueAnnotation"].get("text") or "")
    return ""


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def parse_flag(resource: dict[str, Any]) -> RaFlag:
    contained = resource.get("contained") or []
    prov: dict[str, Any] = next((c for c in contained if c.get("resourceType") == "Provenance"), {})
    agent = (prov.get("agent") or [{}])[0]
    withheld = any(s.get("code") == "REDACTED" for s in (resource.get("meta") or {}).get("security") or ())
    since = _time((resource.get("period") or {}).get("start"))
    base: dict[str, Any] = dict(status=str(resource.get("status") or ""), since=since,
                recorded_by=str((agent.get("who") or {}).get("display") or ""),
                organisation=str((agent.get("onBehalfOf") or {}).get("display") or ""), withheld=withheld,
                flag_id=str(resource.get("id") or ""))
    if withheld:
        return RaFlag(**base)
    impairments = tuple((_display(c.get("code")), " ".join(n.get("text", "") for n in c.get("note") or ()))
                        for c in contained if c.get("resourceType") == "Condition")
    adjustments = tuple(Adjustment(_display((c.get("category") or [{}, {}])[-1]), _display(c.get("code")),
                                   _annotation(c.get("extension")))
                        for c in contained if c.get("resourceType") == "Flag")
    consent: dict[str, Any] = next((c for c in contained if c.get("resourceType") == "Consent"), {})
    consent_text = _display(consent.get("policyRule"))
    if consent.get("performer"):
        consent_text += f" — {consent['performer'][0].get('display', '')}"
    return RaFlag(**base, impairments=impairments, adjustments=adjustments, consent=consent_text,
                  notes=_annotation(resource.get("extension")))


class Flags:
    def __init__(self, client: SpineApi, auth: Auth) -> None:
        self._client, self._auth = client, auth

    def reasonable_adjustments(self, nhs_number: str) -> tuple[RaFlag, ...]:
        doc, _ = self._client.fhir("GET", f"{FLAGS_BASE}/Flag", self._auth, params=[
            ("patient", f"{NHS_NUMBER_SYSTEM}|{nhs_number}"), ("status", "active")])
        return tuple(parse_flag(e.get("resource") or {}) for e in doc.get("entry") or ()
                     if (e.get("resource") or {}).get("resourceType") == "Flag")
