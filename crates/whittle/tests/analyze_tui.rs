//! `whittle analyze -i` driven in a pseudo-terminal: keys move between layers and the tree
//! shown changes; `q` exits with status 0 and leaves the terminal as it found it (cooked mode,
//! primary screen, cursor shown). The screen is read by parsing the byte stream with `vt100`.
//! Also: `-i` is refused when standard output is not a terminal.
#![allow(clippy::unwrap_used)]

use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcgetattr, tcsetwinsize, LocalModes, Winsize};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

const ROWS: u16 = 40;
const COLS: u16 = 150;

/// Stores `tui:1`: layer 0 adds `/base/one`, layer 1 `/base/layer1-only`, layer 2
/// `/top/layer2-file` and writes `/base/one` again with other content.
fn seed(root: &Path) {
    let s = Store::open(root).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let layers: [&[(&str, &[u8])]; 3] = [
        &[("base/one", b"first")],
        &[("base/layer1-only", &[7u8; 3000])],
        &[("top/layer2-file", b"2"), ("base/one", b"second version")],
    ];
    for files in layers {
        let d = tempfile::tempdir().unwrap();
        for (p, content) in files {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        let w = s.blob_writer(None).unwrap();
        let (info, w) = write_layer(d.path(), &WriteOptions::default(), w).unwrap();
        w.commit().unwrap();
        diff_ids.push(info.diff_id.to_string());
        descs.push((info.digest, info.media_type.to_string(), info.size));
    }
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "ADD base"}, {"created_by": "RUN add layer1"}, {"created_by": "RUN add layer2"}]
    });
    let img = s
        .write_image(&serde_json::to_vec(&cfg).unwrap(), &descs)
        .unwrap();
    s.tag(&Reference::parse("tui:1").unwrap(), &img.manifest)
        .unwrap();
}

/// A pty whose output is parsed into a screen as it arrives.
struct Pty {
    master: fs::File,
    screen: Arc<Mutex<(vt100::Parser, Vec<u8>)>>,
}

impl Pty {
    /// Opens a pty of ROWS x COLS; returns it and its slave side.
    fn open() -> (Pty, OwnedFd) {
        let m = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
        grantpt(&m).unwrap();
        unlockpt(&m).unwrap();
        let name = ptsname(&m, Vec::new()).unwrap();
        tcsetwinsize(
            &m,
            Winsize {
                ws_row: ROWS,
                ws_col: COLS,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .unwrap();
        let slave: OwnedFd = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap()
            .into();
        let master = fs::File::from(m);
        let screen = Arc::new(Mutex::new((vt100::Parser::new(ROWS, COLS, 0), Vec::new())));
        let mut reader = master.try_clone().unwrap();
        let s = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // Ends with EIO once every slave descriptor is closed.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut g = s.lock().unwrap();
                g.0.process(&buf[..n]);
                g.1.extend_from_slice(&buf[..n]);
            }
        });
        (Pty { master, screen }, slave)
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().0.screen().contents()
    }

    /// Waits until the screen satisfies `ok` (or fails the test after 30 s).
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let c = self.contents();
            if ok(&c) {
                return c;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}; the screen:\n{c}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, keys: &[u8]) {
        self.master.write_all(keys).unwrap();
        self.master.flush().unwrap();
    }

    fn cooked(&self) -> bool {
        let t = tcgetattr(&self.master).unwrap();
        t.local_modes.contains(LocalModes::ICANON) && t.local_modes.contains(LocalModes::ECHO)
    }
}

#[test]
fn keys_move_between_layers_and_the_tree_follows() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    seed(&root);
    let (mut pty, slave) = Pty::open();
    assert!(pty.cooked());
    // A session of its own with the pty as controlling terminal (so /dev/tty is the pty, not
    // the terminal the tests run in).
    let mut child = Command::new("setsid")
        .args(["--ctty", "--wait"])
        .arg(env!("CARGO_BIN_EXE_whittle"))
        .arg("--root")
        .arg(&root)
        .args(["analyze", "-i", "tui:1"])
        .env_remove("WHITTLE_ROOT")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();

    // The last layer first: everything is there, and base/one is marked changed.
    let s = pty.wait_for("the view on layer 2", |s| {
        s.contains("Files as of layer 2") && s.contains("layer2-file")
    });
    assert!(s.contains("layer1-only"), "{s}");
    let line = |s: &str, name: &str| {
        s.lines()
            .find(|l| l.contains(name) && !l.contains("Files as of"))
            .unwrap_or_else(|| panic!("no {name} in\n{s}"))
            .to_string()
    };
    assert!(line(&s, " one").contains("M -rw"), "{s}");
    assert!(line(&s, "layer2-file").contains("A -rw"), "{s}");
    assert!(!pty.cooked(), "raw mode while the view runs");

    // Up in the layer list: layer 1 has no layer2-file, and adds layer1-only.
    pty.send(b"k");
    let s = pty.wait_for("layer 1", |s| s.contains("Files as of layer 1"));
    assert!(!s.contains("layer2-file"), "{s}");
    assert!(line(&s, "layer1-only").contains("A -rw"), "{s}");
    assert!(!line(&s, " one").contains("M -rw"), "{s}");

    // Down arrow back to layer 2, then up twice to layer 0.
    pty.send(b"\x1b[B");
    pty.wait_for("layer 2 again", |s| {
        s.contains("Files as of layer 2") && s.contains("layer2-file")
    });
    pty.send(b"kk");
    let s = pty.wait_for("layer 0", |s| s.contains("Files as of layer 0"));
    assert!(
        !s.contains("layer1-only") && !s.contains("layer2-file"),
        "{s}"
    );

    // Tab to the tree, collapse /base (the first row): its files go.
    pty.send(b"\t ");
    let s = pty.wait_for("base collapsed", |s| s.contains("▸ base"));
    assert!(!s.contains(" one"), "{s}");

    // Help, closed again with Escape.
    pty.send(b"?");
    pty.wait_for("the help", |s| s.contains("show only wasted"));
    pty.send(b"\x1b");
    pty.wait_for("the help closed", |s| !s.contains("show only wasted"));

    pty.send(b"q");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "whittle did not exit on q"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(pty.cooked(), "the terminal is back in cooked mode");
    let start = Instant::now();
    loop {
        let g = pty.screen.lock().unwrap();
        let raw = &g.1;
        let done = !g.0.screen().alternate_screen()
            && raw.windows(8).any(|w| w == b"\x1b[?1049l")
            && raw.windows(6).any(|w| w == b"\x1b[?25h");
        if done {
            break;
        }
        drop(g);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "left the alternate screen and showed the cursor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refused_when_stdout_is_not_a_terminal() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    seed(&root);
    let o = Command::new(env!("CARGO_BIN_EXE_whittle"))
        .arg("--root")
        .arg(&root)
        .args(["analyze", "-i", "tui:1"])
        .env_remove("WHITTLE_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("needs a terminal on standard output"), "{err}");
    assert!(o.stdout.is_empty());
    // -i with a report option is a usage error.
    let o = Command::new(env!("CARGO_BIN_EXE_whittle"))
        .args(["analyze", "-i", "--format", "json", "tui:1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
