"""Summary Care Record: documents, consent, permission to view, alerts (routes, rules, FHIR shapes, store, seed)."""
