//! Platforms (`os/arch[/variant]`) and the predefined platform ARGs.

use crate::shell::Vars;

/// A platform such as `linux/amd64` or `linux/arm/v7` (the type every crate shares).
pub use whittle_oci::Platform;

/// The predefined platform ARGs (`TARGETPLATFORM`, `BUILDARCH`, ...) for a build, as BuildKit
/// sets them. The checker uses the same set, so both agree on what is defined.
pub fn platform_args(target: &Platform, build: &Platform) -> Vars {
    let mut v = Vars::default();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        v.set(&format!("{prefix}PLATFORM"), &p.to_string());
        v.set(&format!("{prefix}OS"), &p.os);
        v.set(&format!("{prefix}ARCH"), &p.arch);
        v.set(
            &format!("{prefix}VARIANT"),
            p.variant.as_deref().unwrap_or(""),
        );
    }
    v
}
