"""The OpenAPI document and the router agree: every route served is documented and every documented operation is
served (method + path), and the document is the merge of the files in resources/openapi/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.resources_path import resource
from app.service import app as service_app
from app.service.core.http import Router
from app.service.runtime import Service, ServiceConfig, build_service
from app.service.storage import open_store

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


class RecordingRouter(Router):
    """A real router that also remembers what it was given."""

    seen: set[tuple[str, str]]

    def add(self, method, pattern, handler) -> None:  # type: ignore[no-untyped-def]
        self.seen = getattr(self, "seen", set()) | {(method.upper(), pattern)}
        super().add(method, pattern, handler)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    store = open_store(f"sqlite:///{tmp_path / 'service.db'}")
    built = build_service(ServiceConfig("unused://", training_pki=str(tmp_path / "pki")), store=store)
    yield built
    built.close()


def test_every_served_route_is_in_the_openapi_document_and_every_documented_one_is_served(service, monkeypatch):
    monkeypatch.setattr(service_app, "Router", RecordingRouter)
    document = service_app.openapi_document()
    router = service_app.build_router(service.context, document)
    served = router.seen
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item
                  if method in METHODS}
    assert served - {("GET", "/openapi.json")} == documented


def test_the_document_is_core_json_with_every_feature_file_merged_in() -> None:
    document = service_app.openapi_document()
    assert document["openapi"].startswith("3.") and document["info"]["version"]
    paths: list[str] = []
    for name in service_app.OPENAPI_FILES:
        paths += json.loads(resource("openapi", f"{name}.json").read_text(encoding="utf-8"))["paths"]
    assert sorted(paths) == sorted(document["paths"])  # each path in exactly one file
    assert sorted(p.stem for p in resource("openapi").glob("*.json")) == sorted(service_app.OPENAPI_FILES)
