"""What every service feature shares: HTTP values and the router, request limits, the request context (auth,
RBAC, idempotency, audit), OperationOutcomes, sign-in and the audit routes, rate limits, housekeeping and the
FHIR pieces more than one feature reads (the Patient resource, withheld details). Never imports a feature."""
