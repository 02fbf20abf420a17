//! EXPOSE port specs, read as BuildKit reads them (docker's `nat.ParsePortSpecs`).
//!
//! A spec is `[[IP:]HOST_PORT:]CONTAINER_PORT[/PROTO]`; only the container port is exposed.
//! CONTAINER_PORT may be a range `START-END`, which exposes every port in it. PROTO is `tcp`
//! (the default), `udp` or `sctp`, in any case.

/// The largest range one EXPOSE word may name: all ports. Bounds the output.
const MAX_PORT: u32 = 65535;

/// The `PORT/PROTO` keys that `spec` exposes, in order, or what is wrong with it.
pub fn expand(spec: &str) -> Result<Vec<String>, String> {
    let (rest, proto) = match spec.split_once('/') {
        Some((p, "")) => (p, "tcp".to_string()),
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "invalid protocol {proto:?} in EXPOSE {spec}: use tcp, udp or sctp"
        ));
    }
    // The container port is the last `:` field; an IPv6 host address is bracketed.
    let container = rest.rsplit(':').next().unwrap_or(rest);
    if container.is_empty() {
        return Err(format!("no port in EXPOSE {spec}"));
    }
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (port(a, spec)?, port(b, spec)?),
        None => {
            let p = port(container, spec)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!(
            "invalid port range {container} in EXPOSE {spec}: the end is below the start"
        ));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn port(s: &str, spec: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(p) if p <= MAX_PORT && s.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!(
            "invalid port {s:?} in EXPOSE {spec}: a port is a number from 0 to 65535"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn ports_and_ranges() {
        assert_eq!(expand("80").unwrap(), ["80/tcp"]);
        assert_eq!(expand("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(expand("80/").unwrap(), ["80/tcp"]);
        assert_eq!(
            expand("8080-8082/tcp").unwrap(),
            ["8080/tcp", "8081/tcp", "8082/tcp"]
        );
        assert_eq!(expand("127.0.0.1:8000:80").unwrap(), ["80/tcp"]);
        assert_eq!(expand("9000-9001/sctp").unwrap().len(), 2);
        assert_eq!(expand("0-65535").unwrap().len(), 65536);
    }

    #[test]
    fn bad_specs_say_why() {
        assert!(expand("80/icmp").unwrap_err().contains("invalid protocol"));
        assert!(expand("http")
            .unwrap_err()
            .contains("invalid port \"http\""));
        assert!(expand("70000").unwrap_err().contains("0 to 65535"));
        assert!(expand("+80").unwrap_err().contains("invalid port"));
        assert!(expand("90-80").unwrap_err().contains("below the start"));
        assert!(expand("").unwrap_err().contains("no port"));
    }
}
