"""The composed storage: the SQLite and PostgreSQL stores, each every feature's SQL over one engine, and their
schema migrations. The one place the features meet below the HTTP layer."""
