//! A vendored dependency of the example (a path crate inside the build context).

/// The greeting the example prints.
pub fn greeting(name: &str) -> String {
    format!("hello, {name}!")
}
