//! `whittle doctor` on this machine: as root, and as an ordinary user without subordinate ids
//! (`nobody`), who gets the command that adds them.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn doctor(as_nobody: bool) -> serde_json::Value {
    let bin = env!("CARGO_BIN_EXE_whittle");
    let out = if as_nobody {
        // A copy nobody can reach: the build tree may sit under a directory only root can
        // enter (a checkout in /root).
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.path().join("whittle");
        std::fs::copy(bin, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&copy)
            .args(["doctor", "--format", "json"])
            .current_dir("/")
            .output()
            .unwrap()
    } else {
        Command::new(bin)
            .args(["doctor", "--format", "json"])
            .output()
            .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v.as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {v}"))
}

#[test]
fn doctor_reports_every_check_and_fixes_for_an_ordinary_user() {
    let v = doctor(false);
    for id in [
        "overlay",
        "userns",
        "subids",
        "uidmap",
        "overlay-userns",
        "network",
        "binfmt",
    ] {
        let c = check(&v, id);
        let status = c["status"].as_str().unwrap();
        assert!(["ok", "missing", "notneeded"].contains(&status), "{c}");
        assert_eq!(c["fix"].is_string(), status == "missing", "{c}");
    }
    if !rustix::process::geteuid().is_root() {
        return; // the rest switches to another user
    }
    assert_eq!(check(&v, "subids")["status"], "notneeded");
    // nobody has no subordinate ids on any machine this runs on.
    let v = doctor(true);
    let s = check(&v, "subids");
    assert_eq!(s["status"], "missing", "{s}");
    assert!(
        s["fix"].as_str().unwrap().contains("usermod --add-subuids"),
        "{s}"
    );
}
