//! Content store: OCI blob layout, metadata database, locks, fsck and prune (in progress).
