"""The bundled Spine service layer (ASGI). Never imports app.card, app.client or app.ui.

Where things are:

- ``app.py`` assembles the routes and the OpenAPI document; ``runtime.py`` builds the context (store, auth,
  writers, background work); ``server.py`` runs uvicorn.
- ``core/``: what every feature shares — HTTP values and the router (``http.py``), request limits, the request
  context (auth, RBAC, idempotency, audit: ``context.py``), OperationOutcomes (``outcome.py``), ETags, the Patient
  resource and restricted patients' withheld details, sign-in and the audit query (``auth_routes.py``,
  ``audit_routes.py``), rate limits, housekeeping. Never imports a feature.
- ``pds/``, ``scr/``, ``cpis/``, ``flags/``: one folder per clinical service, each with ``routes.py`` (module-level
  handlers listed in ``ROUTES``), its rules, FHIR shapes, ``store.py`` (the ``typing.Protocol`` of what it needs from
  storage), its SQL and schema migration (``sql.py``, ``schema.py``) and its seed. Features never import each other
  (import-linter contracts in pyproject.toml); their OpenAPI documents are ``resources/openapi/<feature>.json``.
- ``store/``: the engines' common ground (core storage protocol, rows, errors, migrations runner, group commit,
  audit chain, identity and idempotency SQL). ``storage/``: the SQLite and PostgreSQL stores composing every
  feature's SQL (``composed.py``), their migration lists, and ``open_store``.

A new route: a module-level ``handler(ctx, request)`` in the feature's ``routes.py``, a row in its ``ROUTES``, the
operation in ``resources/openapi/<feature>.json`` (tests/service/test_openapi_routes.py checks both agree) and its
activities in ``resources/rbac.json``. A new PDS search parameter: parse it in ``pds/search.py`` (into
``store.rows.SearchFilter`` if the database filters on it, with the SQL in ``storage/composed.py``), score it in
``pds/rank.py`` and document it in ``resources/openapi/pds.json``.
"""
