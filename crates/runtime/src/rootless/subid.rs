//! `/etc/subuid` and `/etc/subgid`: the ranges of subordinate ids an ordinary user may map into
//! a user namespace through the setuid `newuidmap`/`newgidmap` (shadow-utils' format: one
//! `user:start:count` a line, the user by name or by uid; several lines add up).

/// One range of subordinate ids: `count` host ids from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// The ranges `text` (a subuid or subgid file) gives the user `uid`, named `name` when known,
/// in the file's order. Malformed lines, empty ranges and ranges that wrap past the last id are
/// left out, as shadow-utils leaves them out.
pub fn ranges(text: &str, uid: u32, name: Option<&str>) -> Vec<IdRange> {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let mut f = l.split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if f.next().is_some() || !(who == uid || Some(who) == name) {
                return None;
            }
            let start: u32 = start.trim().parse().ok()?;
            let count: u32 = count.trim().parse().ok()?;
            (count > 0 && start.checked_add(count).is_some()).then_some(IdRange { start, count })
        })
        .collect()
}

/// How many ids the ranges hold together.
pub fn total(ranges: &[IdRange]) -> u64 {
    ranges.iter().map(|r| u64::from(r.count)).sum()
}

/// The arguments of `newuidmap PID ...` (or `newgidmap`): id 0 in the namespace is `own` (the
/// user's own id), ids 1, 2, ... are the subordinate ranges one after another.
pub fn map_args(own: u32, ranges: &[IdRange]) -> Vec<String> {
    let mut args = vec!["0".to_string(), own.to_string(), "1".to_string()];
    let mut inside: u64 = 1;
    for r in ranges {
        // Namespace ids are u32 too: a map past the last one is refused by the kernel anyway.
        if inside + u64::from(r.count) > u64::from(u32::MAX) {
            break;
        }
        args.extend([inside.to_string(), r.start.to_string(), r.count.to_string()]);
        inside += u64::from(r.count);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_or_uid_in_file_order() {
        let f = "alice:100000:65536\n# bob:1:2\n1001:300000:10\nbob:200000:65536\nalice:400000:5\n";
        assert_eq!(
            ranges(f, 1001, Some("alice")),
            vec![
                IdRange {
                    start: 100000,
                    count: 65536
                },
                IdRange {
                    start: 300000,
                    count: 10
                },
                IdRange {
                    start: 400000,
                    count: 5
                },
            ]
        );
        assert_eq!(total(&ranges(f, 1001, Some("alice"))), 65551);
        assert_eq!(ranges(f, 1002, None), vec![]);
    }

    #[test]
    fn malformed_and_empty_lines_are_left_out() {
        let f = "alice:x:5\nalice:10\nalice:1:0\nalice:4294967295:2\nalice:7:8:9\n alice:20:3 \n";
        assert_eq!(
            ranges(f, 5, Some("alice")),
            vec![IdRange {
                start: 20,
                count: 3
            }]
        );
    }

    #[test]
    fn maps_own_id_to_root_and_ranges_after_it() {
        let r = [
            IdRange {
                start: 100000,
                count: 65536,
            },
            IdRange {
                start: 300000,
                count: 10,
            },
        ];
        assert_eq!(
            map_args(1000, &r),
            ["0", "1000", "1", "1", "100000", "65536", "65537", "300000", "10"]
        );
        assert_eq!(map_args(1000, &[]), ["0", "1000", "1"]);
    }
}
