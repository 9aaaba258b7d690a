"""Patient flags: the Reasonable Adjustment Flag (routes, parsing, FHIR shapes, store, seed)."""
