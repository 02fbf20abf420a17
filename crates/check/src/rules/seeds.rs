//! whittle's own rules: the practices the example Dockerfiles (the seeds) teach and no other
//! tool checks. Those that depend on an image stay silent when the store does not know it.

use super::hadolint::final_chain;
use super::shellwords::commands;
use super::{run_text, Ctx, StageView};
use crate::{Finding, Span};
use whittle_dockerfile::ast::{Instruction, Kind};
use whittle_dockerfile::plan::Base;

pub(super) fn run(ctx: &Ctx, out: &mut Vec<Finding>) {
    toolchain(ctx, out);
    for st in &ctx.stages {
        deps_after_sources(ctx, st, out);
        unpinned_base(ctx, st, out);
    }
    dockerignore(ctx, out);
    final_root(ctx, out);
    dynamic_on_scratch(ctx, out);
    scratch_ca_certs(ctx, out);
}

/// A `scratch` final stage with no CA certificates, while the program in the context makes TLS
/// connections (the caller's evidence; silent without it).
fn scratch_ca_certs(ctx: &Ctx, out: &mut Vec<Finding>) {
    let Some(evidence) = ctx.context().and_then(|c| c.tls_use.as_deref()) else {
        return;
    };
    let t = ctx.target();
    let Some(st) = ctx.stages.get(t) else { return };
    if !matches!(base_image(ctx, t).as_deref(), Some("scratch")) {
        return;
    }
    // Any stage of the final image's chain that puts certificates in place.
    let certs = final_chain(ctx)
        .iter()
        .filter_map(|&i| ctx.stages.get(i))
        .any(|s| {
            s.body.iter().any(|i| match &i.kind {
                Kind::Copy(c) | Kind::Add(c) => c
                    .sources
                    .iter()
                    .chain(std::iter::once(&c.dest))
                    .any(|w| w.text.contains("ca-certificates") || w.text.contains("/etc/ssl")),
                _ => false,
            })
        });
    if certs {
        return;
    }
    let mut f = ctx.finding(
        "ScratchWithoutCaCerts",
        ctx.inst_span(st.from_inst),
        format!("the final stage is scratch with no CA certificates, but {evidence}: its TLS connections will fail (x509: certificate signed by unknown authority)"),
    );
    f.hint = Some("copy them from the build stage: COPY --from=<build> /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/".into());
    out.push(f);
}

/// The image a stage is ultimately built on (following `FROM <stage>`), as the plan expanded
/// it, or as written for stages the plan did not expand.
fn base_image(ctx: &Ctx, mut i: usize) -> Option<String> {
    for _ in 0..=ctx.stages.len() {
        match ctx.base(i)? {
            Base::Image { reference } => return Some(reference),
            Base::Scratch => return Some("scratch".into()),
            Base::Stage { index } => i = index,
        }
    }
    None
}

/// The repository's last path component and the tag (`golang`, `1.22-bookworm`).
fn name_and_tag(reference: &str) -> (String, String) {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    match last.split_once(':') {
        Some((n, t)) => (n.to_ascii_lowercase(), t.to_ascii_lowercase()),
        None => (last.to_ascii_lowercase(), String::new()),
    }
}

/// Which toolchain an image is, if it is one; and a sketch of the multi-stage rewrite.
fn toolchain_of(reference: &str) -> Option<(&'static str, &'static str)> {
    let (name, tag) = name_and_tag(reference);
    let small = tag.contains("slim") || tag.contains("alpine");
    let jre = tag.contains("jre");
    let go = "FROM golang:<version> AS build\nWORKDIR /src\nCOPY go.mod go.sum ./\nRUN go mod download\nCOPY . .\nRUN CGO_ENABLED=0 go build -trimpath -o /out/app .\n\nFROM gcr.io/distroless/static-debian12:nonroot\nCOPY --from=build /out/app /app\nENTRYPOINT [\"/app\"]";
    let rust = "FROM rust:<version> AS build\nWORKDIR /src\nCOPY Cargo.toml Cargo.lock ./\nRUN mkdir src && echo 'fn main() {}' > src/main.rs && cargo build --release && rm -rf src\nCOPY . .\nRUN touch src/main.rs && cargo build --release\n\nFROM gcr.io/distroless/cc-debian12:nonroot\nCOPY --from=build /src/target/release/app /app\nENTRYPOINT [\"/app\"]";
    let java = "FROM maven:<version> AS build\nWORKDIR /src\nCOPY pom.xml ./\nRUN mvn -B dependency:go-offline\nCOPY src ./src\nRUN mvn -B package -DskipTests\n\nFROM eclipse-temurin:<version>-jre\nCOPY --from=build /src/target/app.jar /app.jar\nUSER 65534\nENTRYPOINT [\"java\", \"-jar\", \"/app.jar\"]";
    let python = "FROM python:<version> AS build\nRUN python -m venv /venv\nCOPY requirements.txt ./\nRUN /venv/bin/pip install --no-cache-dir -r requirements.txt\n\nFROM python:<version>-slim\nCOPY --from=build /venv /venv\nCOPY . /app\nUSER 65534\nCMD [\"/venv/bin/python\", \"/app/main.py\"]";
    let node = "FROM node:<version> AS build\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build && npm prune --omit=dev\n\nFROM node:<version>-slim\nWORKDIR /app\nCOPY --from=build /app ./\nUSER node\nCMD [\"node\", \"dist/index.js\"]";
    let c = "FROM gcc:<version> AS build\nWORKDIR /src\nCOPY . .\nRUN make\n\nFROM debian:<version>-slim\nCOPY --from=build /src/app /usr/local/bin/app\nUSER 65534\nENTRYPOINT [\"app\"]";
    match name.as_str() {
        "golang" => Some(("Go", go)),
        "rust" => Some(("Rust", rust)),
        "maven" | "gradle" => Some(("Java build", java)),
        "openjdk" | "eclipse-temurin" | "amazoncorretto" if !jre => Some(("JDK", java)),
        "gcc" | "buildpack-deps" => Some(("C/C++", c)),
        "python" if !small => Some(("full Python", python)),
        "node" if !small => Some(("full Node.js", node)),
        _ => None,
    }
}

fn toolchain(ctx: &Ctx, out: &mut Vec<Finding>) {
    let t = ctx.target();
    let Some(st) = ctx.stages.get(t) else { return };
    let Some(image) = base_image(ctx, t) else {
        return;
    };
    let Some((what, sketch)) = toolchain_of(&image) else {
        return;
    };
    let mut f = ctx.finding(
        "ToolchainInFinalImage",
        ctx.inst_span(st.from_inst),
        format!("the final image is built on {image}, a {what} toolchain image: compilers, headers and caches ship with the program"),
    );
    f.hint = Some(format!(
        "build in one stage and copy only the result into a runtime image, e.g.:\n{sketch}"
    ));
    out.push(f);
}

/// Package managers whose install step reads only the manifests: (command test, ecosystem,
/// manifest files to copy first).
fn dependency_step(
    cmd: &super::shellwords::Command,
) -> Option<(&'static str, &'static [&'static str])> {
    let p: Vec<&str> = cmd.program().iter().map(String::as_str).collect();
    let prog = p.first().map(|n| n.rsplit('/').next().unwrap_or(n))?;
    let sub = p
        .iter()
        .skip(1)
        .find(|w| !w.starts_with('-'))
        .copied()
        .unwrap_or("");
    match (prog, sub) {
        ("go", "mod" | "build" | "install" | "test") => Some(("Go", &["go.mod", "go.sum"])),
        ("cargo", "build" | "fetch" | "install" | "test") => {
            Some(("Cargo", &["Cargo.toml", "Cargo.lock"]))
        }
        ("npm", "ci" | "install" | "i") | ("yarn", "" | "install") | ("pnpm", "install" | "i") => {
            Some((
                "npm",
                &[
                    "package.json",
                    "package-lock.json (or yarn.lock, pnpm-lock.yaml)",
                ],
            ))
        }
        ("pip" | "pip3", "install")
            if p.iter()
                .any(|w| *w == "-r" || w.starts_with("--requirement") || *w == ".") =>
        {
            Some(("pip", &["requirements*.txt (or pyproject.toml)"]))
        }
        ("poetry", "install") | ("uv", "sync") => {
            Some(("Python", &["pyproject.toml", "poetry.lock / uv.lock"]))
        }
        ("mvn" | "./mvnw", _) => Some(("Maven", &["pom.xml"])),
        ("gradle" | "./gradlew", _) => {
            Some(("Gradle", &["build.gradle(.kts)", "settings.gradle(.kts)"]))
        }
        _ => None,
    }
}

const MANIFESTS: &[&str] = &[
    "go.mod",
    "go.sum",
    "cargo.toml",
    "cargo.lock",
    "package.json",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "requirements",
    "pyproject.toml",
    "poetry.lock",
    "uv.lock",
    "pom.xml",
    "build.gradle",
    "settings.gradle",
];

fn whole_context(inst: &Instruction) -> bool {
    match &inst.kind {
        Kind::Copy(c) | Kind::Add(c) if c.from.is_none() => c
            .sources
            .iter()
            .any(|s| matches!(whittle_context::ignore::clean(&s.text).as_str(), "." | "/")),
        _ => false,
    }
}

fn copies_manifest(inst: &Instruction) -> bool {
    match &inst.kind {
        Kind::Copy(c) | Kind::Add(c) if c.from.is_none() => c.sources.iter().any(|s| {
            let l = s.text.to_ascii_lowercase();
            MANIFESTS.iter().any(|m| l.contains(m))
        }),
        _ => false,
    }
}

fn deps_after_sources(ctx: &Ctx, st: &StageView, out: &mut Vec<Finding>) {
    let mut whole: Option<&Instruction> = None;
    for inst in &st.body {
        if copies_manifest(inst) && whole.is_none() {
            return;
        }
        if whole.is_none() && whole_context(inst) {
            whole = Some(inst);
            continue;
        }
        let Kind::Run(r) = &inst.kind else { continue };
        let text = run_text(inst).unwrap_or_default();
        let step = commands(&text).iter().find_map(dependency_step);
        let Some((eco, files)) = step else { continue };
        let Some(copy) = whole else {
            // Dependencies installed before the sources are copied: the good order.
            return;
        };
        if r.mounts.iter().any(|m| m.spec.text.contains("type=cache")) {
            return;
        }
        let mut f = ctx.finding(
            "DependenciesAfterSources",
            ctx.inst_span(copy),
            format!("the whole context is copied before the {eco} dependencies are fetched (line {}), so any source edit downloads them again", inst.pos.line),
        );
        f.hint = Some(format!(
            "copy {} first, run the dependency step, then COPY . .",
            files.join(", ")
        ));
        out.push(f);
        return;
    }
}

fn unpinned_base(ctx: &Ctx, st: &StageView, out: &mut Vec<Finding>) {
    let raw = st.from.image.text.as_str();
    let reference = match ctx.base(st.index) {
        Some(Base::Image { reference }) => reference,
        Some(_) => return,
        None => return,
    };
    if reference.contains('@') || reference.contains('$') {
        return;
    }
    let digest = ctx.image(&reference).and_then(|i| i.digest);
    let mut f = ctx.finding(
        "BaseImageNotPinned",
        ctx.word_span(&st.from.image),
        format!("base image {reference} is not pinned to a digest: the tag can move, and the build with it"),
    );
    match &digest {
        Some(d) => {
            f.hint = Some(format!("pin it: FROM {reference}@{d}"));
            if !raw.contains('$') {
                f.fix = ctx.fix(
                    format!("pin {reference} to {d}"),
                    &[(st.from.image.pos, raw.chars().count(), format!("{raw}@{d}"))],
                );
            }
        }
        None => {
            f.hint = Some(format!(
                "pull it (whittle pull {reference}) so whittle check --fix can pin the digest, or write {reference}@sha256:<digest>"
            ))
        }
    }
    out.push(f);
}

fn human(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Directories over this size are worth ignoring even when their name says nothing.
const LARGE_DIR: u64 = 50 * 1024 * 1024;

/// Whether a COPY or ADD from the context names `entry` (then the build needs it).
fn copied(ctx: &Ctx, entry: &str) -> bool {
    ctx.stages
        .iter()
        .flat_map(|s| s.body.iter())
        .any(|i| match &i.kind {
            Kind::Copy(c) | Kind::Add(c) if c.from.is_none() => c.sources.iter().any(|w| {
                let p = whittle_context::ignore::clean(&w.text);
                p == entry || p.starts_with(&format!("{entry}/"))
            }),
            _ => false,
        })
}

fn dockerignore(ctx: &Ctx, out: &mut Vec<Finding>) {
    let Some(c) = ctx.context() else { return };
    let named =
        |e: &crate::ContextEntry| matches!(e.name.as_str(), ".git" | "node_modules" | "target");
    let heavy: Vec<&crate::ContextEntry> = match ctx.ignore {
        // No .dockerignore: the usual suspects, and any large directory.
        None => c
            .entries
            .iter()
            .filter(|e| e.dir && (named(e) || e.bytes >= LARGE_DIR) && !copied(ctx, &e.name))
            .collect(),
        // A .dockerignore that leaves the usual suspects in.
        Some(m) => c
            .entries
            .iter()
            .filter(|e| {
                e.dir
                    && named(e)
                    && !m.is_ignored(&e.name)
                    && !m.is_ignored(&format!("{}/x", e.name))
                    && !copied(ctx, &e.name)
            })
            .collect(),
    };
    if heavy.is_empty() {
        return;
    }
    let total: u64 = heavy.iter().map(|e| e.bytes).sum();
    let list: Vec<String> = heavy
        .iter()
        .map(|e| format!("{} ({})", e.name, human(e.bytes)))
        .collect();
    let names: Vec<&str> = heavy.iter().map(|e| e.name.as_str()).collect();
    let (message, hint) = if ctx.ignore.is_none() {
        (
            format!(
                "the context has no .dockerignore, so every build reads {}; ignoring them saves {}",
                list.join(", "),
                human(total)
            ),
            format!("create .dockerignore with the lines: {}", names.join(" ")),
        )
    } else {
        (
            format!(
                ".dockerignore leaves {} in the context; ignoring them saves {} per build",
                list.join(", "),
                human(total)
            ),
            format!("add these lines to .dockerignore: {}", names.join(" ")),
        )
    };
    let mut f = ctx.finding(
        "MissingDockerignore",
        Span {
            line: 0,
            col: 0,
            len: 0,
        },
        message,
    );
    f.hint = Some(hint);
    out.push(f);
}

fn is_root(user: &str) -> bool {
    let u = user.split(':').next().unwrap_or("");
    u.is_empty() || u == "root" || u == "0"
}

fn final_root(ctx: &Ctx, out: &mut Vec<Finding>) {
    let chain = final_chain(ctx);
    let has_user = chain
        .iter()
        .filter_map(|&i| ctx.stages.get(i))
        .any(|s| s.body.iter().any(|i| matches!(i.kind, Kind::User(_))));
    if has_user {
        return;
    }
    let t = ctx.target();
    let Some(st) = ctx.stages.get(t) else { return };
    let root = match base_image(ctx, t).as_deref() {
        Some("scratch") => true,
        Some(image) => match ctx.image(image) {
            Some(facts) => is_root(&facts.user),
            None => false,
        },
        None => false,
    };
    if root {
        let mut f = ctx.finding(
            "FinalStageRoot",
            ctx.inst_span(st.from_inst),
            "the final stage runs as root: nothing in it sets USER, and its base runs as root",
        );
        f.hint =
            Some("add USER 65534:65534 (nobody) near the end, or a user the image creates".into());
        out.push(f);
    }
}

/// Whether a base is a libc-less image.
fn libc_less(reference: &str) -> bool {
    reference == "scratch" || reference.contains("distroless/static")
}

fn dynamic_on_scratch(ctx: &Ctx, out: &mut Vec<Finding>) {
    let t = ctx.target();
    let Some(st) = ctx.stages.get(t) else { return };
    let base_name = match ctx.base(t) {
        Some(Base::Scratch) => "scratch".to_string(),
        Some(Base::Image { reference }) if libc_less(&reference) => reference,
        _ => return,
    };
    for inst in &st.body {
        let (Kind::Copy(c) | Kind::Add(c)) = &inst.kind else {
            continue;
        };
        let Some(from) = &c.from else { continue };
        let name = from.text.to_ascii_lowercase();
        let Some(src) = ctx.stages[..t].iter().rev().find(|s| {
            s.from.name.as_ref().is_some_and(|n| n.text == name)
                || name.parse::<usize>().ok() == Some(s.index)
        }) else {
            continue;
        };
        if let Some(reason) = dynamic_build(ctx, src.index) {
            let mut f = ctx.finding(
                "DynamicBinaryOnScratch",
                ctx.inst_span(inst),
                format!(
                    "this copies from stage {}, where {reason}; {} has no libc to load it with",
                    from.text, base_name
                ),
            );
            f.hint = Some("build a static binary: CGO_ENABLED=0 go build, or cargo build --target x86_64-unknown-linux-musl (or use a distroless/cc base)".into());
            out.push(f);
        }
    }
}

/// Why stage `i` (or a stage it is built on) probably builds a dynamically linked binary.
fn dynamic_build(ctx: &Ctx, i: usize) -> Option<String> {
    let mut chain = vec![i];
    while let Some(Base::Stage { index }) = chain.last().and_then(|&j| ctx.base(j)) {
        if chain.contains(&index) {
            break;
        }
        chain.push(index);
    }
    chain.reverse();
    let mut cgo_off = false;
    let mut musl = false;
    let image = base_image(ctx, i).unwrap_or_default();
    if image.contains("alpine") || image.contains("musl") {
        musl = true;
    }
    for &j in &chain {
        let Some(st) = ctx.stages.get(j) else {
            continue;
        };
        for inst in &st.body {
            match &inst.kind {
                Kind::Env(kvs) => {
                    for kv in kvs_of(kvs) {
                        if kv.0 == "CGO_ENABLED" && kv.1 == "0" {
                            cgo_off = true;
                        }
                        if kv.0 == "CARGO_BUILD_TARGET" && kv.1.contains("musl") {
                            musl = true;
                        }
                    }
                }
                Kind::Run(_) => {
                    let text = run_text(inst).unwrap_or_default();
                    let mut run_cgo_off = cgo_off;
                    for cmd in commands(&text) {
                        if cmd.words.iter().any(|w| w == "CGO_ENABLED=0") {
                            run_cgo_off = true;
                        }
                        let p = cmd.program();
                        let prog = p.first().map(String::as_str).unwrap_or("");
                        let sub = p.get(1).map(String::as_str).unwrap_or("");
                        if prog == "go"
                            && sub == "build"
                            && !run_cgo_off
                            && !cmd
                                .words
                                .iter()
                                .any(|w| w.contains("-extldflags") && w.contains("-static"))
                        {
                            return Some(format!(
                                "`go build` on line {} runs without CGO_ENABLED=0",
                                inst.pos.line
                            ));
                        }
                        if prog == "cargo"
                            && sub == "build"
                            && !musl
                            && !p.iter().any(|w| w.contains("musl"))
                        {
                            return Some(format!(
                                "`cargo build` on line {} targets glibc, not musl",
                                inst.pos.line
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    None
}

fn kvs_of(kvs: &[whittle_dockerfile::ast::KeyValue]) -> impl Iterator<Item = (&str, &str)> {
    kvs.iter()
        .map(|kv| (kv.key.text.as_str(), kv.value.trim_matches('"')))
}
