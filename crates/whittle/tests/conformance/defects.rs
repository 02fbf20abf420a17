//! Issue #11's defects beyond COPY's source selection: destination modes, WORKDIR under USER,
//! EXPOSE ranges, the `--parents` pivot and FROM --platform's message. Each test failed before
//! its fix.

use crate::{build, env, extract_image, root_or_skip, whittle};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use whittle_store::Store;

fn config(root: &std::path::Path, name: &str) -> serde_json::Value {
    let s = Store::open(root).unwrap();
    let t = s.resolve(name).unwrap();
    s.manifest_and_config(&t.image).unwrap().1
}

#[test]
fn a_directory_copy_creates_its_destination_0755_and_keeps_inner_modes() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    fs::create_dir_all(e.ctx.join("app/inner")).unwrap();
    fs::write(e.ctx.join("app/run.sh"), "echo hi\n").unwrap();
    fs::set_permissions(e.ctx.join("app"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(e.ctx.join("app/inner"), fs::Permissions::from_mode(0o700)).unwrap();
    let df = "FROM test/busybox:1 AS src\nCOPY app /app\n\
              FROM test/busybox:1\nCOPY app /app\nCOPY --from=src /app /again\n\
              COPY --chown=1000:1000 app /owned\n\
              USER nobody\nRUN cat /app/run.sh /again/run.sh\n";
    let r = build(&e, df, "mode:1");
    assert!(r.ok, "{}", r.stderr);
    let img = extract_image(&e.root, "mode:1");
    for (p, mode, uid) in [
        ("app", 0o755, 0),
        ("again", 0o755, 0),
        ("owned", 0o755, 1000),
        ("app/inner", 0o700, 0),
        ("owned/inner", 0o700, 1000),
    ] {
        let md = fs::symlink_metadata(img.path().join(p)).unwrap();
        assert_eq!(md.mode() & 0o7777, mode, "/{p}");
        assert_eq!(md.uid(), uid, "/{p}");
    }
}

#[test]
fn workdir_creates_missing_directories_owned_by_user() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    let df = "FROM test/busybox:1\nUSER 1000:1000\nWORKDIR /home/app/w/x\nRUN touch made\n\
              USER app\nWORKDIR /byname\nUSER root\nWORKDIR /rooted\n";
    let r = build(&e, df, "wd:1");
    assert!(r.ok, "{}", r.stderr);
    let img = extract_image(&e.root, "wd:1");
    let owner = |p: &str| {
        let md = fs::symlink_metadata(img.path().join(p)).unwrap();
        (md.uid(), md.gid(), md.mode() & 0o7777)
    };
    // /home/app existed (root-owned in the base): it keeps its owner; what WORKDIR made is 1000's.
    assert_eq!(owner("home/app/w"), (1000, 1000, 0o755));
    assert_eq!(owner("home/app/w/x"), (1000, 1000, 0o755));
    assert_eq!(owner("home/app/w/x/made").0, 1000);
    assert_eq!(owner("byname"), (1000, 1000, 0o755));
    assert_eq!(owner("rooted"), (0, 0, 0o755));
    let r = build(&e, "FROM test/busybox:1\nUSER ghost\nWORKDIR /g\n", "wd:2");
    assert!(!r.ok);
    assert!(r.stderr.contains("no user \"ghost\""), "{}", r.stderr);
}

#[test]
fn expose_stores_every_port_of_a_range() {
    let e = env();
    let r = build(
        &e,
        "FROM test/busybox:1\nEXPOSE 8080-8082/tcp 53/UDP 9000\n",
        "ports:1",
    );
    assert!(r.ok, "{}", r.stderr);
    let ports = &config(&e.root, "ports:1")["config"]["ExposedPorts"];
    let mut keys: Vec<&str> = ports
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["53/udp", "8080/tcp", "8081/tcp", "8082/tcp", "9000/tcp"]
    );
    let r = build(&e, "FROM test/busybox:1\nEXPOSE 80/icmp\n", "ports:2");
    assert!(!r.ok);
    assert!(
        r.stderr.contains("Dockerfile:2") && r.stderr.contains("invalid protocol"),
        "{}",
        r.stderr
    );
}

#[test]
fn copy_parents_keeps_the_path_after_the_pivot() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    fs::create_dir_all(e.ctx.join("a/b/c")).unwrap();
    fs::create_dir_all(e.ctx.join("x/y")).unwrap();
    fs::write(e.ctx.join("a/b/c/file.txt"), "f\n").unwrap();
    fs::write(e.ctx.join("x/y/1.txt"), "1\n").unwrap();
    fs::write(e.ctx.join("x/y/2.txt"), "2\n").unwrap();
    let df = "FROM test/busybox:1\nCOPY --parents ./a/./b/c/file.txt /p2/\n\
              COPY --parents ./x/./y/*.txt /p3/\nCOPY --parents a/b/c/file.txt /p1/\n";
    let r = build(&e, df, "parents:1");
    assert!(r.ok, "{}", r.stderr);
    let img = extract_image(&e.root, "parents:1");
    assert!(img.path().join("p2/b/c/file.txt").is_file());
    assert!(!img.path().join("p2/a").exists());
    assert!(img.path().join("p3/y/1.txt").is_file());
    assert!(img.path().join("p3/y/2.txt").is_file());
    assert!(img.path().join("p1/a/b/c/file.txt").is_file());
}

#[test]
fn from_a_platform_the_store_lacks_names_the_platforms_it_has() {
    let e = env();
    let host = whittle_dockerfile::Platform::host();
    let other = if host.arch == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    fs::write(
        e.ctx.join("Dockerfile"),
        format!("FROM --platform={other} test/busybox:1\nRUN true\n"),
    )
    .unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let r = whittle(&e.root, &["build", "--pull=never", "-t", "plat:1", &ctx]);
    assert!(!r.ok);
    let want = format!(
        "test/busybox:1 is in the store only for linux/{}",
        host.arch
    );
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("not for {other}")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("not in the store"), "{}", r.stderr);
}

#[test]
fn run_steps_see_the_epoch_and_the_local_image_has_the_shipped_mtimes() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    let df = "FROM test/busybox:1\n\
              RUN echo \"$SOURCE_DATE_EPOCH\" > /epoch && touch /made && touch -d @1600000000 /old\n";
    fs::write(e.ctx.join("Dockerfile"), df).unwrap();
    let ctx = e.ctx.to_string_lossy().into_owned();
    let stat = |image: &str| {
        let r = whittle(
            &e.root,
            &["run", "--rm", image, "stat", "-c", "%Y", "/made", "/old"],
        );
        assert!(r.ok, "{}", r.stderr);
        r.stdout
    };
    let shipped = |image: &str, p: &str| {
        fs::symlink_metadata(extract_image(&e.root, image).path().join(p))
            .unwrap()
            .mtime()
    };

    // Default epoch 0: RUN is told, and what `whittle run` shows is what the layer holds.
    let r = whittle(&e.root, &["build", "--network=none", "-t", "sde:0", &ctx]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        crate::image_file(&e.root, "sde:0", "epoch").unwrap(),
        b"0\n"
    );
    assert_eq!(stat("sde:0"), "0\n0\n");
    assert_eq!(shipped("sde:0", "made"), 0);

    // --build-arg SOURCE_DATE_EPOCH sets the epoch: later mtimes are clamped to it, earlier
    // ones kept, the same locally and in the layer; the image's created time is the epoch.
    let r = whittle(
        &e.root,
        &[
            "build",
            "--network=none",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1700000000",
            "-t",
            "sde:1",
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    // A predefined arg, never "not consumed".
    let p = whittle(
        &e.root,
        &["plan", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", &ctx],
    );
    assert!(p.ok && !p.stdout.contains("not consumed"), "{}", p.stdout);
    assert_eq!(
        crate::image_file(&e.root, "sde:1", "epoch").unwrap(),
        b"1700000000\n"
    );
    assert_eq!(stat("sde:1"), "1700000000\n1600000000\n");
    assert_eq!(shipped("sde:1", "made"), 1_700_000_000);
    assert_eq!(shipped("sde:1", "old"), 1_600_000_000);
    assert_eq!(config(&e.root, "sde:1")["created"], "2023-11-14T22:13:20Z");

    // Within the build, a later step sees a COPY's real mtimes (make and cargo compare them
    // with their objects'); the image, run or built upon, holds what ships.
    fs::write(e.ctx.join("src.c"), "int x;\n").unwrap();
    let real = fs::metadata(e.ctx.join("src.c")).unwrap().mtime();
    assert!(real > 1_000_000);
    let r = build(
        &e,
        "FROM test/busybox:1\nCOPY src.c /src.c\nRUN stat -c %Y /src.c > /seen\n",
        "sde:3",
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        crate::image_file(&e.root, "sde:3", "seen").unwrap(),
        format!("{real}\n").as_bytes()
    );
    let r = whittle(
        &e.root,
        &["run", "--rm", "sde:3", "stat", "-c", "%Y", "/src.c"],
    );
    assert_eq!(r.stdout, "0\n", "{}", r.stderr);
    let r = build(
        &e,
        "FROM sde:3\nRUN stat -c %Y /src.c /seen > /seen2\n",
        "sde:4",
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        crate::image_file(&e.root, "sde:4", "seen2").unwrap(),
        b"0\n0\n"
    );

    // The Dockerfile's own value wins in RUN; a bad --build-arg value is refused.
    let r = build(
        &e,
        "FROM test/busybox:1\nENV SOURCE_DATE_EPOCH=5\nRUN echo \"$SOURCE_DATE_EPOCH\" > /epoch\n",
        "sde:2",
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        crate::image_file(&e.root, "sde:2", "epoch").unwrap(),
        b"5\n"
    );
    let r = whittle(
        &e.root,
        &["build", "--build-arg", "SOURCE_DATE_EPOCH=yesterday", &ctx],
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("seconds since 1970"), "{}", r.stderr);
}

/// A static client that asks the agent at $SSH_AUTH_SOCK for its identities and prints how
/// many it has (the busybox image has no ssh).
const AGENT_CLIENT: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
static int readn(int fd, unsigned char *b, int n) {
  for (int got = 0; got < n;) { int r = read(fd, b + got, n - got); if (r <= 0) return -1; got += r; }
  return 0;
}
int main(void) {
  const char *p = getenv("SSH_AUTH_SOCK");
  if (!p) { puts("no SSH_AUTH_SOCK"); return 1; }
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {0}; a.sun_family = AF_UNIX; strncpy(a.sun_path, p, sizeof a.sun_path - 1);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
  unsigned char req[5] = {0, 0, 0, 1, 11}, h[9];
  if (write(fd, req, 5) != 5 || readn(fd, h, 9) != 0 || h[4] != 12) { puts("bad reply"); return 1; }
  printf("identities: %u\n", (unsigned)h[5] << 24 | h[6] << 16 | h[7] << 8 | h[8]);
  return 0;
}
"#;

#[test]
fn ssh_agents_are_forwarded_by_id_and_never_stored() {
    if !root_or_skip("building") {
        return;
    }
    let e = env();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("c.c");
    fs::write(&src, AGENT_CLIENT).unwrap();
    let cc = std::process::Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(e.ctx.join("agentcall"))
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let key = tmp.path().join("id");
    let kg = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(kg.success());
    let ctx = e.ctx.to_string_lossy().into_owned();
    let key_arg = format!("deploy={}", key.display());
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\nCOPY agentcall /agentcall\n\
         RUN --mount=type=ssh,id=deploy,uid=1000,mode=0660 /agentcall > /out \
         && stat -c '%u %a %F' $SSH_AUTH_SOCK >> /out && echo $SSH_AUTH_SOCK >> /out\n\
         RUN --mount=type=ssh,id=absent echo ran without it > /optional\n",
    )
    .unwrap();
    let r = whittle(
        &e.root,
        &[
            "build",
            "--network=none",
            "--ssh",
            &key_arg,
            "-t",
            "ssh:1",
            &ctx,
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        String::from_utf8(crate::image_file(&e.root, "ssh:1", "out").unwrap()).unwrap(),
        "identities: 1\n1000 660 socket\n/run/buildkit/ssh_agent.0\n"
    );
    assert!(crate::image_file(&e.root, "ssh:1", "optional").is_some());
    // The mount point is not in the image, and the key is in no blob of the store.
    let img = extract_image(&e.root, "ssh:1");
    assert!(!img.path().join("run/buildkit/ssh_agent.0").exists());
    let secret = fs::read_to_string(&key).unwrap();
    let line = secret.lines().nth(1).unwrap();
    let grep = std::process::Command::new("grep")
        .args(["-rqF", line])
        .arg(&e.root)
        .status()
        .unwrap();
    assert!(!grep.success(), "the private key reached the store");

    // A required agent that was not given: the error says what to pass.
    fs::write(
        e.ctx.join("Dockerfile"),
        "FROM test/busybox:1\nRUN --mount=type=ssh,required true\n",
    )
    .unwrap();
    let r = whittle(&e.root, &["build", "--network=none", &ctx]);
    assert!(!r.ok);
    assert!(r.stderr.contains("pass --ssh default"), "{}", r.stderr);
    // --ssh default without an agent says how to get one.
    let out = assert_cmd::Command::cargo_bin("whittle")
        .unwrap()
        .env_remove("SSH_AUTH_SOCK")
        .args(["--root"])
        .arg(&e.root)
        .args(["build", "--ssh", "default", &ctx])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SSH_AUTH_SOCK is not set"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
