//! Cancellation and the death of the caller: nothing may outlive either.
#![allow(clippy::unwrap_used)] // helpers are test code: unwrap is how a test fails

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};
use whittle_runtime::*;

/// Pids of processes whose command line is exactly `sleep <token>`.
fn sleepers(token: &str) -> Vec<u32> {
    let want = format!("sleep\0{token}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes())
        })
        .collect()
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn host_mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(d))
        .map(String::from)
        .collect()
}

#[test]
fn cancel_kills_every_process_of_the_container() {
    if !privileged() {
        return;
    }
    // Under runc too: killing the runtime's own process would leave its container running.
    for (n, engine) in engines().into_iter().enumerate() {
        let f = Fixture::new();
        let rt = f.rt(&engine);
        let token = format!("8{}{n}", std::process::id());
        let (t1, t2) = (format!("{token}1"), format!("{token}2"));
        let (w1, w2) = (t1.clone(), t2.clone());
        let cancel = CancelToken::new().unwrap();
        let c2 = cancel.clone();
        let canceller = std::thread::spawn(move || {
            wait_until(Duration::from_secs(10), || {
                !sleepers(&w1).is_empty() && !sleepers(&w2).is_empty()
            });
            c2.cancel();
        });
        let spec = sh(
            f.overlay("up"),
            &format!("sleep {t1} & sleep {t2}; echo not reached"),
        );
        let start = Instant::now();
        // (The canceller waits for both sleeps, so the cancel lands mid-run, not before it.)
        let r = rt.run(&spec, &mut |_: Stream, _: &[u8]| {}, &cancel);
        canceller.join().unwrap();
        assert!(matches!(r, Err(Error::Cancelled)), "{engine:?}: {r:?}");
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "{engine:?}: cancel took {:?}",
            start.elapsed()
        );
        assert!(
            wait_until(Duration::from_secs(2), || sleepers(&t1).is_empty()
                && sleepers(&t2).is_empty()),
            "{engine:?}: container processes survived the cancel"
        );
        assert!(host_mounts_under(f.tmp.path()).is_empty(), "{engine:?}");
    }
}

/// Not a test on its own: the process that `kill_9_of_the_caller_leaves_nothing_behind` starts
/// and kills. It runs a container that never ends (bounded by a watchdog, in case the test
/// itself dies first).
#[test]
#[ignore = "helper process of kill_9_of_the_caller_leaves_nothing_behind"]
fn helper_process_running_a_container() {
    let (Some(dir), Some(token)) = (
        std::env::var_os("WHITTLE_KILL_TEST_DIR"),
        std::env::var("WHITTLE_KILL_TEST_TOKEN").ok(),
    ) else {
        return;
    };
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(3);
        }
    });
    let dir = std::path::PathBuf::from(dir);
    let rt = runtime(Engine::BuiltIn, &dir.join("state"));
    let mut spec = sh(
        Rootfs::Overlay {
            lower: vec![dir.join("root")],
            upper: dir.join("up"),
        },
        &format!("sleep {token}1 & touch /mark/started; sleep {token}2"),
    );
    spec.mounts = vec![Mount {
        target: "/mark".into(),
        kind: MountKind::Cache {
            source: dir.join("mark"),
            uid: None,
            gid: None,
            mode: None,
        },
    }];
    let _ = rt.run(
        &spec,
        &mut |_: Stream, _: &[u8]| {},
        &CancelToken::new().unwrap(),
    );
}

/// Kills the helper process if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_of_the_caller_leaves_nothing_behind() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("mark")).unwrap();
    let token = format!("9{}", std::process::id());
    let (t1, t2) = (format!("{token}1"), format!("{token}2"));
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_process_running_a_container",
            "--ignored",
            "--nocapture",
        ])
        .env("WHITTLE_KILL_TEST_DIR", f.tmp.path())
        .env("WHITTLE_KILL_TEST_TOKEN", &token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    assert!(
        wait_until(Duration::from_secs(20), || f.path("mark/started").exists()),
        "the container never started"
    );
    // `touch` can run before the backgrounded shell has exec'd `sleep`, and `sleep T2` starts
    // after it: wait for both rather than look once.
    assert!(
        wait_until(Duration::from_secs(10), || sleepers(&t1).len() == 1
            && sleepers(&t2).len() == 1),
        "the container's two sleeps never both ran: {:?} {:?}",
        sleepers(&t1),
        sleepers(&t2)
    );
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || sleepers(&t1).is_empty()
            && sleepers(&t2).is_empty()),
        "container processes outlived kill -9 of their caller"
    );
    // The overlay and every other mount lived in the container's mount namespace only.
    assert!(
        host_mounts_under(f.tmp.path()).is_empty(),
        "{:?}",
        host_mounts_under(f.tmp.path())
    );
    // The namespace goes when its last process has exited, which on a loaded machine can be a
    // moment after the sleepers are gone.
    let mount_alive = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("mountinfo")).ok())
            .any(|m| m.contains(f.tmp.path().to_str().unwrap()))
    };
    assert!(
        wait_until(Duration::from_secs(10), || !mount_alive()),
        "a mount of the dead container is still alive somewhere"
    );
}

#[test]
fn cancel_works_after_the_container_closed_its_output() {
    if !privileged() {
        return;
    }
    let f = Fixture::new();
    let rt = f.rt(&Engine::BuiltIn);
    let token = format!("7{}", std::process::id());
    let t = token.clone();
    let cancel = CancelToken::new().unwrap();
    let c2 = cancel.clone();
    let canceller = std::thread::spawn(move || {
        wait_until(Duration::from_secs(10), || !sleepers(&t).is_empty());
        c2.cancel();
    });
    let spec = sh(f.dir_rootfs(), &format!("exec >&- 2>&-; sleep {token}"));
    let start = Instant::now();
    let r = rt.run(&spec, &mut |_: Stream, _: &[u8]| {}, &cancel);
    canceller.join().unwrap();
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(8));
    assert!(sleepers(&token).is_empty());
}
