"""The service rules: RBAC, PDS search/patch/restriction, versioning, audit."""
