"""FHIR R4 serialisation and OperationOutcome errors per service."""
