//! `USER name[:group]` / `uid[:gid]` resolution against an image's /etc/passwd and /etc/group.
//!
//! Pure parsing over the files' text, so it is unit-tested without a container; the init helper
//! reads the files from inside the container's root (after `pivot_root`), so symlinks in the
//! image can never point it at the host's files.

/// Resolved credentials of the container process.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary gid first, like Docker).
    pub groups: Vec<u32>,
    /// The groups /etc/group lists the user in (what BuildKit gives a RUN step).
    pub memberships: Vec<u32>,
    /// Home directory from /etc/passwd (`/` when unknown).
    pub home: String,
}

/// Resolves `spec` (`name[:group]`, `uid[:gid]`, or empty for root) given the contents of
/// /etc/passwd and /etc/group (either may be missing: numeric ids still work).
pub fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, String> {
    let spec = spec.trim();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let passwd_entries: Vec<PasswdEntry> = passwd.map(parse_passwd).unwrap_or_default();
    let group_entries: Vec<GroupEntry> = group.map(parse_group).unwrap_or_default();

    // A name is looked up; a number is used as it is (and its passwd entry, if any, gives the
    // primary group and home).
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd_entries
            .iter()
            .find(|e| e.uid == uid)
            .cloned()
            .or(Some(PasswdEntry {
                name: String::new(),
                uid,
                gid: 0,
                home: "/".into(),
            })),
        Err(_) => passwd_entries.iter().find(|e| e.name == user_part).cloned(),
    };
    let Some(entry) = entry else {
        return Err(if passwd.is_none() {
            format!("no user named {user_part:?}: the image has no /etc/passwd")
        } else {
            format!("no user named {user_part:?} in the image's /etc/passwd")
        });
    };

    let gid = match group_part {
        None | Some("") => entry.gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => match group_entries.iter().find(|e| e.name == g) {
                Some(e) => e.gid,
                None => return Err(format!("no group named {g:?} in the image's /etc/group")),
            },
        },
    };

    // Supplementary groups: like Docker, only when the group was not given explicitly.
    let mut memberships = Vec::new();
    if group_part.is_none() && !entry.name.is_empty() {
        for g in &group_entries {
            if g.members.iter().any(|m| m == &entry.name) && !memberships.contains(&g.gid) {
                memberships.push(g.gid);
            }
        }
    }
    let mut groups = vec![gid];
    groups.extend(memberships.iter().filter(|g| **g != gid));
    Ok(ResolvedUser {
        uid: entry.uid,
        gid,
        groups,
        memberships,
        home: if entry.home.is_empty() {
            "/".into()
        } else {
            entry.home
        },
    })
}

#[derive(Clone, Debug)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Clone, Debug)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\nbuilder:x:1000:1000::/home/builder:/bin/sh\nbroken line\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\nbuilder:x:1000:\nwheel:x:10:builder,other\naudio:x:29:other\ndocker:x:999:builder\n";

    #[test]
    fn name_gives_uid_primary_and_supplementary_groups() {
        let u = resolve("builder", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.home.as_str()),
            (1000, 1000, "/home/builder")
        );
        assert_eq!(u.groups, vec![1000, 10, 999]);
    }

    #[test]
    fn explicit_group_by_name_or_number_drops_supplementary() {
        let u = resolve("builder:audio", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((u.uid, u.gid, u.groups.clone()), (1000, 29, vec![29]));
        let u = resolve("builder:4242", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 4242));
    }

    #[test]
    fn numeric_ids_work_without_entries() {
        let u = resolve("4000:4001", None, None).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4000, 4001, "/"));
        let u = resolve("65534", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.home.as_str()),
            (65534, 65534, "/nonexistent")
        );
        let u = resolve("", Some(PASSWD), None).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(resolve("ghost", Some(PASSWD), Some(GROUP))
            .unwrap_err()
            .contains("ghost"));
        assert!(resolve("builder:ghosts", Some(PASSWD), Some(GROUP))
            .unwrap_err()
            .contains("ghosts"));
        assert!(resolve("builder", None, None)
            .unwrap_err()
            .contains("no /etc/passwd"));
    }
}
