// A tiny Rust program, built in the Rust toolchain image and shipped on a distroless-like base
// (glibc and libgcc only: no shell, no package manager).
fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "world".to_string());
    println!(
        "{} (a Rust binary on a distroless base, uid {}, built by whittle)",
        greet::greeting(&name),
        uid()
    );
}

fn uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "?".to_string())
}
