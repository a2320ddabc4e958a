//! The manual: one module per topic, each with examples that run as
//! doctests. Start with [`versioned_writes`]; [`strategy`] says when a row
//! lock serves better than a version.
//!
//! | guide | what it covers |
//! | --- | --- |
//! | [`models`] | `#[derive(Optimistic)]`: attributes, version types, versions the database sets |
//! | [`versioned_writes`] | versioned updates and deletes, partial updates, generic code, conflicts answered with the current row |
//! | [`batches`] | many rows in one call, with a report per row |
//! | [`locks`] | `FOR UPDATE`, `FOR SHARE`, `NOWAIT`, `SKIP LOCKED`, lock timeouts |
//! | [`errors`] | every `OccError` variant and whether it is retried |
//! | [`retry`] | `occ::retry` and the service's own error type |
//! | [`asynchronous`] | diesel-async connections and pools |
//! | [`http`] | ETags, `If-Match`, `If-None-Match` and statuses |
//! | [`strategy`] | `modify` and row temperature, guarded updates, optimistic or pessimistic by hand, with measurements |
//! | [`replicas`] | read from a replica and write through the primary (`modify_from`), `ReadOnly`, failover |
//! | [`observability`] | spans and metrics in OpenTelemetry's database conventions (features `tracing`, `metrics`) |
//! | [`backends`] | features, and what differs on PostgreSQL, MySQL/MariaDB, Galera and SQLite |

pub mod models {
    #![doc = include_str!("guide/models.md")]
}

pub mod versioned_writes {
    #![doc = include_str!("guide/versioned_writes.md")]
}

pub mod batches {
    #![doc = include_str!("guide/batches.md")]
}

pub mod locks {
    #![doc = include_str!("guide/locks.md")]
}

pub mod errors {
    #![doc = include_str!("guide/errors.md")]
}

pub mod retry {
    #![doc = include_str!("guide/retry.md")]
}

pub mod asynchronous {
    #![doc = include_str!("guide/asynchronous.md")]
}

pub mod http {
    #![doc = include_str!("guide/http.md")]
}

pub mod strategy {
    #![doc = include_str!("guide/strategy.md")]
}

pub mod replicas {
    #![doc = include_str!("guide/replicas.md")]
}

pub mod observability {
    #![doc = include_str!("guide/observability.md")]
}

pub mod backends {
    #![doc = include_str!("guide/backends.md")]
}
