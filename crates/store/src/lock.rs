//! Advisory file locks (flock) shared by every whittle process using a store.

use crate::error::{Result, StoreError};
use rustix::fs::FlockOperation;
use std::fs::File;
use std::path::Path;

/// A held flock; released when dropped (or when the process dies, even by SIGKILL).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    fn open(path: &Path) -> Result<File> {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::io("open lock", path, e))
    }

    /// Waits for an exclusive lock.
    pub fn exclusive(path: &Path) -> Result<FileLock> {
        Self::lock(path, FlockOperation::LockExclusive)
    }

    /// Waits for a shared lock.
    pub fn shared(path: &Path) -> Result<FileLock> {
        Self::lock(path, FlockOperation::LockShared)
    }

    /// Takes an exclusive lock if nobody holds the file, else returns None.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        let file = Self::open(path)?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(StoreError::io("lock", path, e.into())),
        }
    }

    fn lock(path: &Path, op: FlockOperation) -> Result<FileLock> {
        let file = Self::open(path)?;
        loop {
            match rustix::fs::flock(&file, op) {
                Ok(()) => return Ok(FileLock { _file: file }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(StoreError::io("lock", path, e.into())),
            }
        }
    }
}
