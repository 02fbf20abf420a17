//! `whittle analyze --format html`, rendered by headless Chromium (Debian's `chromium`): the
//! page's script ran without an exception (it adds `#whittle-ready` only then), the DOM holds
//! every layer and every finding, a file named like markup is shown as text, and a screenshot
//! is not blank. Without chromium the test is skipped with a reason, except as root or in CI
//! (run scripts/deps.sh).
#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use std::fs;
use std::path::Path;
use whittle_layer::{write_layer, WriteOptions};
use whittle_oci::Reference;
use whittle_store::Store;

const EVIL: &str = "<img src=x onerror=document.title='pwned'>";

fn chromium() -> Option<&'static str> {
    if Path::new("/usr/bin/chromium").is_file() {
        return Some("/usr/bin/chromium");
    }
    let must = rustix::process::geteuid().is_root() || std::env::var_os("CI").is_some();
    assert!(!must, "chromium is missing; run scripts/deps.sh");
    eprintln!("skipped: chromium not installed (run scripts/deps.sh as root)");
    None
}

/// Three layers: a base with docs and an apt cache, one that copies the same big file again
/// and adds the file with markup in its name, one that overwrites a file.
fn seed(root: &Path) {
    let s = Store::open(root).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for i in 0..3 {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        match i {
            0 => {
                fs::create_dir_all(p.join("usr/share/doc/pkg")).unwrap();
                fs::create_dir_all(p.join("var/cache/apt/archives")).unwrap();
                fs::create_dir_all(p.join("usr/lib")).unwrap();
                fs::write(p.join("usr/share/doc/pkg/README"), vec![b'd'; 50_000]).unwrap();
                fs::write(p.join("var/cache/apt/archives/x.deb"), vec![b'c'; 80_000]).unwrap();
                fs::write(p.join("usr/lib/big.so"), &big).unwrap();
                for n in 0..300 {
                    fs::write(p.join(format!("usr/lib/small{n}")), vec![b's'; 10]).unwrap();
                }
                fs::write(p.join("app.conf"), vec![b'a'; 30_000]).unwrap();
            }
            1 => {
                fs::create_dir_all(p.join("opt")).unwrap();
                fs::write(p.join("opt/big-again.so"), &big).unwrap();
                fs::write(p.join(EVIL), vec![b'e'; 120_000]).unwrap();
            }
            _ => {
                fs::write(p.join("app.conf"), vec![b'b'; 40_000]).unwrap();
            }
        }
        let w = s.blob_writer(None).unwrap();
        let (info, w) = write_layer(p, &WriteOptions::default(), w).unwrap();
        w.commit().unwrap();
        diff_ids.push(info.diff_id.to_string());
        descs.push((info.digest, info.media_type.to_string(), info.size));
    }
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created_by": "ADD base /"},
            {"created_by": "/bin/sh -c cp big </script><script>document.title='pwned'</script>"},
            {"created_by": "COPY app.conf /"}
        ]
    });
    let img = s
        .write_image(&serde_json::to_vec(&cfg).unwrap(), &descs)
        .unwrap();
    s.tag(&Reference::parse("page:1").unwrap(), &img.manifest)
        .unwrap();
}

fn whittle(root: &Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("whittle")
        .unwrap()
        .env_remove("WHITTLE_ROOT")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn run_chromium(bin: &str, profile: &Path, extra: &[&str], page: &Path) -> std::process::Output {
    run_chromium_url(bin, profile, extra, &format!("file://{}", page.display()))
}

fn run_chromium_url(bin: &str, profile: &Path, extra: &[&str], url: &str) -> std::process::Output {
    std::process::Command::new("timeout")
        .arg("120")
        .arg(bin)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-extensions",
            "--window-size=1280,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

#[test]
fn the_page_renders_in_chromium() {
    let Some(bin) = chromium() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    seed(&root);
    let page = tmp.path().join("page.html");
    let o = whittle(
        &root,
        &[
            "analyze",
            "--format",
            "html",
            "-o",
            page.to_str().unwrap(),
            "page:1",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = fs::read_to_string(&page).unwrap();
    for banned in ["http://", "https://", "src=\"", "@import", "url("] {
        let at = html.find(banned);
        // The SVG's namespace is a name, not something fetched.
        let ok = at.is_none()
            || (banned == "http://"
                && html.matches(banned).count() == 1
                && html.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(ok, "the page fetches nothing: {banned} at {at:?}");
    }
    let json = whittle(&root, &["analyze", "--format", "json", "page:1"]);
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert!(findings.len() >= 3, "{findings:?}");

    let profile = tmp.path().join("profile");
    let dom = run_chromium(bin, &profile, &["--dump-dom"], &page);
    assert!(
        dom.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(
        dom.contains("id=\"whittle-ready\""),
        "the page's script did not finish: {}",
        &dom[dom.find("id=\"whittle-js-error\"").unwrap_or(0)..]
            .chars()
            .take(300)
            .collect::<String>()
    );
    assert!(!dom.contains("id=\"whittle-js-error\""));
    assert!(
        !dom.contains("<title>pwned</title>"),
        "image text ran as script"
    );
    for l in 0..3 {
        assert!(dom.contains(&format!("id=\"layer-{l}\"")), "layer {l}");
    }
    for (n, f) in findings.iter().enumerate() {
        assert!(
            dom.contains(&format!("id=\"finding-{n}\"")),
            "finding {n}: {f}"
        );
        let kind = f["kind"].as_str().unwrap();
        assert!(dom.contains(&format!("[{kind}]")), "{kind}");
    }
    // The markup file name is text: escaped in the DOM, no element made of it.
    assert!(
        dom.contains("&lt;img src=x onerror=document.title='pwned'&gt;"),
        "the file name is shown as text"
    );
    assert!(!dom.contains("<img"), "no element from a file name");
    let rects: usize = dom
        .split("id=\"whittle-ready\"")
        .nth(1)
        .and_then(|s| s.split("rects=").nth(1))
        .and_then(|s| s.split(['<', ' ']).next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(rects >= 5, "the treemap drew {rects} rectangles");

    // Drill-down: unzoomed at first, the breadcrumb only the root; a fragment naming a directory
    // (what a click sets) zooms into it, with the way back in the breadcrumb.
    assert!(dom.contains("zoom=/<"), "{}", ready_text(&dom));
    assert!(dom.contains("data-zoom=\"/\""));
    assert!(dom.contains("data-path=\"/usr/lib\""));
    let url = format!("file://{}#%2Fusr%2Flib", page.display());
    let z = run_chromium_url(bin, &profile, &["--dump-dom"], &url);
    assert!(z.status.success());
    let z = String::from_utf8_lossy(&z.stdout).into_owned();
    assert!(z.contains("zoom=/usr/lib<"), "{}", ready_text(&z));
    assert!(z.contains("data-zoom=\"/usr/lib\""));
    assert!(
        !z.contains("viewBox=\"0 0 1200 720\""),
        "the view box changed"
    );
    let crumbs = z
        .split("id=\"treemap-crumbs\"")
        .nth(1)
        .and_then(|s| s.split("</nav>").next())
        .unwrap()
        .to_string();
    assert!(crumbs.contains("href=\"#%2F\""), "{crumbs}");
    assert!(crumbs.contains("href=\"#%2Fusr\">usr</a>"), "{crumbs}");
    assert!(crumbs.contains("<b>lib</b>"), "{crumbs}");
    // A fragment naming nothing shows the whole map.
    let url = format!("file://{}#%2Fnope", page.display());
    let n = run_chromium_url(bin, &profile, &["--dump-dom"], &url);
    let n = String::from_utf8_lossy(&n.stdout).into_owned();
    assert!(n.contains("zoom=/<"), "{}", ready_text(&n));

    let shot = tmp.path().join("shot.png");
    let arg = format!("--screenshot={}", shot.display());
    let o = run_chromium(bin, &profile, &[&arg], &page);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bpp = info.color_type.samples() * usize::from(info.bit_depth as u8).div_ceil(8);
    let pixels = &buf[..info.buffer_size()];
    let colours: std::collections::HashSet<&[u8]> = pixels.chunks(bpp).collect();
    assert!(
        colours.len() > 20,
        "the screenshot is blank or nearly: {} colours",
        colours.len()
    );
}

fn ready_text(dom: &str) -> String {
    dom.split("id=\"whittle-ready\"")
        .nth(1)
        .unwrap_or(dom)
        .chars()
        .take(200)
        .collect()
}
