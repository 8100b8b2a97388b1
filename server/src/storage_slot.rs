//! The database handle, filled in once storage has opened (WAL replay done). Until then the
//! listener is already up, `/-/ready` answers 503 and handlers that need storage answer 503
//! `unavailable`, so that readiness is observable during a long replay.

use std::sync::{Arc, OnceLock};

use crate::backend::Backend;
use crate::error::ServerError;

/// Holds the [`Backend`] once open.
#[derive(Default)]
pub struct StorageSlot {
    backend: OnceLock<Arc<dyn Backend>>,
}

impl std::fmt::Debug for StorageSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSlot").field("open", &self.backend.get().is_some()).finish()
    }
}

impl StorageSlot {
    /// Publishes the opened backend; a second call is ignored (storage opens once).
    pub fn set(&self, b: Arc<dyn Backend>) {
        let _ = self.backend.set(b);
    }

    /// The backend, if open.
    pub fn get(&self) -> Option<&Arc<dyn Backend>> {
        self.backend.get()
    }

    /// The backend for a request.
    ///
    /// # Errors
    /// [`ServerError::Unavailable`] while storage is still opening.
    pub fn backend(&self) -> Result<Arc<dyn Backend>, ServerError> {
        self.backend
            .get()
            .cloned()
            .ok_or_else(|| ServerError::Unavailable("storage is not ready: WAL replay in progress".into()))
    }
}
