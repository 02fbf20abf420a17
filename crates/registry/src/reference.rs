//! Registry hosts: which host serves a registry's API, and which hosts are this machine. Image
//! references themselves are `whittle_oci::Reference`.

use whittle_oci::DOCKER_HUB;

/// The host to connect to for a registry name (Docker Hub's API lives elsewhere).
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// Whether a registry is on this machine (`localhost`, `127.0.0.0/8`, `::1`, any port), where
/// plain HTTP is allowed as docker allows it.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:1234",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
    }
}
