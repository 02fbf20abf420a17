//! Times `RUN true`: one container per iteration on an overlay of a busybox rootfs with a fresh
//! upper dir, like a build step. Prints the median (and p10/p90) per engine.
//!
//! Usage: runtime-bench ROOTFS SCRATCH [ITERATIONS] [ENGINE...]   (ENGINE: builtin | runc | PATH,
//! or a variant of the built-in runtime: builtin-dir (no overlay), builtin-hostnet (the host's
//! network), builtin-isolated (the isolated network, slirp4netns or else pasta),
//! builtin-slirp4netns / builtin-pasta (the isolated network through that tool))
//! Run by bench/runtime.sh, which builds it in release mode and makes the rootfs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use whittle_runtime::{
    CancelToken, ContainerSpec, Engine, NetHelper, NetTool, Network, Rootfs, Runtime, Stream,
};

fn main() -> ExitCode {
    // This program is its own container init helper, as the whittle CLI is.
    whittle_runtime::run_init_if_requested();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: {} ROOTFS SCRATCH [ITERATIONS] [ENGINE...]", args[0]);
        return ExitCode::from(2);
    }
    let rootfs = PathBuf::from(&args[1]);
    let scratch = PathBuf::from(&args[2]);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(50);
    let engines: Vec<String> = if args.len() > 4 {
        args[4..].to_vec()
    } else {
        vec!["builtin".into(), "runc".into()]
    };
    let cancel = match CancelToken::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    for name in engines {
        // `builtin-dir` / `builtin-hostnet` / `builtin-isolated`...: the built-in runtime
        // without the overlay, without a network namespace or with the isolated network, to see
        // what each costs.
        let engine = if name.starts_with("builtin") {
            Engine::BuiltIn
        } else {
            Engine::Oci(PathBuf::from(&name))
        };
        let rt = match Runtime::new(engine) {
            Ok(rt) => rt.state_dir(scratch.join("state")),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        let path = std::env::var_os("PATH").unwrap_or_default();
        let rt = match name.as_str() {
            "builtin-slirp4netns" => {
                rt.with_network_helper(NetHelper::find_tool_in(NetTool::Slirp4netns, &path))
            }
            "builtin-pasta" => {
                rt.with_network_helper(NetHelper::find_tool_in(NetTool::Pasta, &path))
            }
            _ => rt,
        };
        let mut times: Vec<Duration> = Vec::with_capacity(n);
        for i in 0..n + 3 {
            let upper = scratch.join(format!("{name}-{i}").replace('/', "_"));
            let fs = if name == "builtin-dir" {
                Rootfs::Dir {
                    path: rootfs.clone(),
                    readonly: false,
                }
            } else {
                Rootfs::Overlay {
                    lower: vec![rootfs.clone()],
                    upper: upper.clone(),
                }
            };
            let mut spec = ContainerSpec::new(fs, vec!["true".into()]);
            spec.network = match name.as_str() {
                "builtin-hostnet" => Network::Host,
                "builtin-isolated" | "builtin-slirp4netns" | "builtin-pasta" => Network::Isolated,
                _ => Network::None,
            };
            let start = Instant::now();
            let r = rt.run(&spec, &mut |_: Stream, _: &[u8]| {}, &cancel);
            let took = start.elapsed();
            let _ = std::fs::remove_dir_all(&upper);
            match r {
                Ok(s) if s.success() => {}
                Ok(s) => {
                    eprintln!("{name}: `true` exited with {s:?}");
                    return ExitCode::from(1);
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
                    return ExitCode::from(1);
                }
            }
            if i >= 3 {
                times.push(took); // the first runs warm caches
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{name:>19}: median {:.2} ms  (p10 {:.2}, p90 {:.2}, n={n})",
            ms(times[n / 2]),
            ms(times[n / 10]),
            ms(times[n * 9 / 10])
        );
    }
    whittle_runtime::wait_for_cleanup();
    ExitCode::SUCCESS
}
