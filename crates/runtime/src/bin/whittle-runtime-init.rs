//! The container init helper as a stand-alone binary (used by this crate's tests and benches,
//! whose `main` is not ours). Started by anything else, it says so and exits.

fn main() {
    whittle_runtime::run_init_if_requested();
    eprintln!("whittle-runtime-init: this is whittle's container init helper; it is started by the runtime, not by hand");
    std::process::exit(2);
}
