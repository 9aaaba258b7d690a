"""The Warrantied Environment Specification and its checker. No Qt; no app.ui."""
