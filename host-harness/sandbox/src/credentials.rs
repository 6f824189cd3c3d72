//! What the sandbox needs of credentials: the headers that authenticate a request on a
//! connection. The sandbox owns this trait and the configuration implements it (logins,
//! token caches, secrets), so the sandbox never depends on how credentials are kept.

use crate::policy::AddressRules;
use std::fmt;
use std::sync::Arc;

/// A connection's credentials could not be had (a login failed, a secret is missing).
/// The message names the connection and the cause, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CredentialError {
    /// What failed, naming the connection.
    pub message: String,
    /// Whether trying again later may help (the login server failed or did not answer);
    /// otherwise the task fails for good (`unauthorized`): wrong credentials, a missing
    /// secret, a denied address.
    pub transient: bool,
}

/// The credentials of named connections, as the outgoing-HTTP hook uses them.
#[async_trait::async_trait]
pub trait ConnectionCredentials: Send + Sync + fmt::Debug {
    /// The headers that authenticate a request on `connection` (logging in if needed,
    /// within `addresses`, the run's address rules).
    async fn headers(
        &self,
        connection: &str,
        addresses: &AddressRules,
    ) -> Result<Vec<(String, String)>, CredentialError>;
    /// Whether a 401 on `connection` may be cured by logging in again.
    fn refreshable(&self, connection: &str) -> bool;
    /// Forget `connection`'s cached token (after a 401).
    fn invalidate(&self, connection: &str);
    /// The pacing of `connection`'s requests, if it has any.
    fn pacer(&self, connection: &str) -> Option<Arc<harness_pacing::Pacer>> {
        let _ = connection;
        None
    }
}
