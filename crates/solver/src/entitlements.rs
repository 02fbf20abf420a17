//! Entitlements (`whittle build --allow`): what a Dockerfile may only do when the person running
//! the build grants it, as BuildKit's `--allow network.host|security.insecure`.
//!
//! The Dockerfile is untrusted input, so a `RUN --network=host` (the host's network namespace,
//! including services on its loopback) or `RUN --security=insecure` in it is refused unless the
//! command line allows it. Checked for the stages the target needs, before anything runs (BuildKit
//! validates the whole definition before it solves); BuildKit's message is
//! "network.host is not allowed".

use crate::solve::BuildError;
use whittle_graph::{Graph, Network, Op};

/// Something a Dockerfile may do only with the user's grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entitlement {
    /// `network.host`: `RUN --network=host`.
    NetworkHost,
    /// `security.insecure`: `RUN --security=insecure`.
    SecurityInsecure,
}

impl Entitlement {
    /// Every entitlement, in BuildKit's spelling order.
    pub const ALL: [Entitlement; 2] = [Entitlement::NetworkHost, Entitlement::SecurityInsecure];

    /// BuildKit's name (`network.host`, `security.insecure`).
    pub fn as_str(self) -> &'static str {
        match self {
            Entitlement::NetworkHost => "network.host",
            Entitlement::SecurityInsecure => "security.insecure",
        }
    }
}

impl std::fmt::Display for Entitlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Entitlement {
    type Err = String;
    /// As buildx: `invalid entitlement: X`.
    fn from_str(s: &str) -> Result<Self, String> {
        Entitlement::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                format!("invalid entitlement: {s} (use network.host or security.insecure)")
            })
    }
}

/// Refuses the graph when an exec the target needs asks for an entitlement that `allowed`
/// lacks, or for one whittle cannot honour (`--security=insecure`).
pub fn check(graph: &Graph, allowed: &[Entitlement]) -> Result<(), BuildError> {
    let needed = crate::solve::needed(graph);
    for v in needed {
        let vx = graph.vertex(v);
        let Op::Exec(e) = &vx.op else {
            continue;
        };
        let (stage, line, summary) = match vx.origins.first() {
            Some(o) => (o.label.clone(), o.line, o.instruction.clone()),
            None => (String::new(), 0, e.args.join(" ")),
        };
        let denied = |entitlement| BuildError::NotAllowed {
            stage: stage.clone(),
            line,
            summary: summary.clone(),
            entitlement,
        };
        if e.network == Network::Host && !allowed.contains(&Entitlement::NetworkHost) {
            return Err(denied(Entitlement::NetworkHost));
        }
        if e.insecure {
            if !allowed.contains(&Entitlement::SecurityInsecure) {
                return Err(denied(Entitlement::SecurityInsecure));
            }
            return Err(BuildError::Step {
                stage,
                line,
                summary,
                message: "RUN --security=insecure is not supported by whittle yet: every RUN has \
                          Docker's default capabilities, seccomp filter and masked paths; remove \
                          the flag or build this Dockerfile with BuildKit"
                    .into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Graph {
        let df = whittle_dockerfile::parse(text).unwrap();
        let plan =
            whittle_dockerfile::plan(&df, &whittle_dockerfile::PlanOptions::default()).unwrap();
        whittle_dockerfile::lower(&plan, &whittle_dockerfile::plan::NoImages).unwrap()
    }

    #[test]
    fn names_parse_as_buildx_spells_them() {
        assert_eq!("network.host".parse(), Ok(Entitlement::NetworkHost));
        assert_eq!(
            "security.insecure".parse(),
            Ok(Entitlement::SecurityInsecure)
        );
        let e = "network.hots".parse::<Entitlement>().unwrap_err();
        assert!(e.starts_with("invalid entitlement: network.hots"), "{e}");
    }

    #[test]
    fn host_network_needs_network_host() {
        let p = plan("FROM scratch\nRUN true\nRUN --network=none true\nRUN --network=host true\n");
        match check(&p, &[]) {
            Err(BuildError::NotAllowed {
                line, entitlement, ..
            }) => {
                assert_eq!(line, 4);
                assert_eq!(entitlement, Entitlement::NetworkHost);
            }
            other => panic!("{other:?}"),
        }
        let msg = check(&p, &[]).unwrap_err().to_string();
        assert!(msg.contains("network.host is not allowed"), "{msg}");
        assert!(msg.contains("--allow network.host"), "{msg}");
        assert!(check(&p, &[Entitlement::NetworkHost]).is_ok());
        assert!(check(&p, &[Entitlement::SecurityInsecure]).is_err());
    }

    #[test]
    fn only_needed_stages_count() {
        let p = plan(
            "FROM scratch AS other\nRUN --network=host --security=insecure true\n\
             FROM scratch\nRUN true\n",
        );
        assert!(check(&p, &[]).is_ok());
    }

    #[test]
    fn insecure_needs_its_entitlement_and_is_then_refused_clearly() {
        let p = plan("FROM scratch\nRUN --security=insecure true\n");
        match check(&p, &[]) {
            Err(BuildError::NotAllowed { entitlement, .. }) => {
                assert_eq!(entitlement, Entitlement::SecurityInsecure)
            }
            other => panic!("{other:?}"),
        }
        match check(&p, &[Entitlement::SecurityInsecure]) {
            Err(BuildError::Step { line, message, .. }) => {
                assert_eq!(line, 2);
                assert!(message.contains("not supported"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let sandbox = plan("FROM scratch\nRUN --security=sandbox true\n");
        assert!(check(&sandbox, &[]).is_ok());
    }
}
