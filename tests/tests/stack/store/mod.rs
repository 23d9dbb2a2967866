//! The mailbox role's store, through its gRPC API, against the harness's real PostgreSQL.

mod directory;
