//! What goes wrong with the shared store: an operation that failed (the caller falls back
//! on local state) and a start-up that cannot work (the process refuses to start).

use std::path::PathBuf;

/// Why one operation on the store has no answer. Each is transient from the caller's
/// side: it uses what this process knows, and the next operation tries again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SharedError {
    /// The first connection has not been made yet (the store was down at start-up).
    #[error("not connected")]
    NotConnected,
    /// No answer within `[shared] timeout_ms`.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// The client or the server reported an error (connection refused or lost, a
    /// server-side error).
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    /// An answer of the wrong shape (another program's data under our prefix, or a
    /// server speaking another dialect): treated like no answer.
    #[error("unexpected reply: {0}")]
    Reply(&'static str),
}

/// Why the store cannot even be set up; `run` refuses to start, `check` reports it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("shared.url: the client refuses it: {0}")]
    Url(redis::RedisError),
    #[error("shared.tls_ca_file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
}
