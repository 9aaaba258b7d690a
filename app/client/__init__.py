"""Client of the Spine service layer (httpx): login handshake and FHIR calls returning typed models."""
