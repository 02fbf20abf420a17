//! Runs a list of independent jobs on a few threads: layer extractions, file copies, blob
//! downloads and uploads. Each item is taken once, in the order of the list (so callers put the
//! longest first); after the first error no new item starts, and that error is returned. A
//! scoped-thread pool in a few lines rather than a dependency such as rayon, whose global pool
//! and work stealing these short lists do not need.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Calls `f` on every item of `items` on up to `threads` threads (at least one, at most one per
/// item), and returns the first error. With one thread, runs inline.
pub fn try_for_each<T, E, F>(items: &[T], threads: usize, f: F) -> Result<(), E>
where
    T: Sync,
    E: Send,
    F: Fn(&T) -> Result<(), E> + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().try_for_each(f);
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first: Mutex<Option<E>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    if let Err(e) = f(item) {
                        failed.store(true, Ordering::Relaxed);
                        let mut slot = first.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match first.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_item_once_on_any_thread_count() {
        let items: Vec<u64> = (1..=1000).collect();
        for threads in [0, 1, 2, 7, 5000] {
            let sum = AtomicU64::new(0);
            let calls = AtomicUsize::new(0);
            try_for_each(&items, threads, |&i| {
                sum.fetch_add(i, Ordering::Relaxed);
                calls.fetch_add(1, Ordering::Relaxed);
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!(sum.into_inner(), 500_500, "{threads} threads");
            assert_eq!(calls.into_inner(), 1000);
        }
        try_for_each(&[] as &[u8], 4, |_| Err("never called")).unwrap();
    }

    #[test]
    fn stops_starting_items_after_an_error_and_returns_it() {
        let items: Vec<u32> = (0..5_000).collect();
        for threads in [1, 3] {
            let started = AtomicUsize::new(0);
            let r = try_for_each(&items, threads, |&i| {
                started.fetch_add(1, Ordering::Relaxed);
                if i == 10 {
                    return Err(format!("item {i} failed"));
                }
                // Items take a while, so the others cannot all be done before the error.
                std::thread::sleep(std::time::Duration::from_micros(200));
                Ok(())
            });
            assert_eq!(r.unwrap_err(), "item 10 failed");
            assert!(started.into_inner() < 1000, "{threads} threads went on");
        }
    }
}
