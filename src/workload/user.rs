//! User and group resolution against the target root's /etc/passwd and /etc/group. Pure: the
//! caller reads the files (from the workload's root, never assumed to be the host's).
//!
//! Semantics follow runc (what image authors expect from Docker): `user`, `uid`, `user:group`,
//! `uid:gid`; a uid without a passwd entry runs with gid 0 and HOME `/`; supplementary groups are
//! every group in /etc/group that lists the user's name.

/// One line of /etc/passwd, borrowed from the file's text (nothing is copied until the one
/// entry the workload runs as is found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswdEntry<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub home: &'a str,
}

impl Identity {
    /// Root, with home `/root`: how roost runs its own helpers (a root exec, the runtime).
    pub fn root() -> Self {
        Identity {
            uid: 0,
            gid: 0,
            groups: vec![0],
            home: "/root".into(),
        }
    }
}

/// One line of /etc/group, borrowed from the file's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupEntry<'a> {
    pub name: &'a str,
    pub gid: u32,
    /// The comma-separated member list as written.
    members: &'a str,
}

impl<'a> GroupEntry<'a> {
    /// The group's members, trimmed, empty ones skipped.
    pub fn members(&self) -> impl Iterator<Item = &'a str> {
        self.members
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
    }
}

/// Who the workload runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups for setgroups(2), the primary gid first.
    pub groups: Vec<u32>,
    pub home: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("user {0:?} not found in /etc/passwd")]
    UnknownUser(String),
    #[error("group {0:?} not found in /etc/group")]
    UnknownGroup(String),
    #[error("{0:?} is not a valid id (0..4294967294)")]
    BadId(String),
}

/// Parses /etc/passwd text, skipping comments and malformed lines (fewer than 7 fields, no
/// name, an id that is not one).
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry<'_>> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let [name, _password, uid, gid, _gecos, home, _shell] = fields(line)?;
            if name.is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name,
                uid: parse_id(uid).ok()?,
                gid: parse_id(gid).ok()?,
                home,
            })
        })
        .collect()
}

/// Parses /etc/group text, skipping comments and malformed lines (fewer than 4 fields, no
/// name, a gid that is not one).
pub fn parse_group(text: &str) -> Vec<GroupEntry<'_>> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let [name, _password, gid, members] = fields(line)?;
            if name.is_empty() {
                return None;
            }
            Some(GroupEntry {
                name,
                gid: parse_id(gid).ok()?,
                members,
            })
        })
        .collect()
}

/// The first `N` colon-separated fields of `line` (None: fewer), in one pass over its bytes
/// and with nothing allocated: PID 1 reads every line of both files at each start.
fn fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut start = 0;
    let mut n = 0;
    let ends = line
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b':')
        .map(|(i, _)| i)
        .chain(std::iter::once(line.len()));
    for end in ends {
        let Some(slot) = out.get_mut(n) else {
            break;
        };
        // `start` and `end` sit at a ':' (ASCII) or the line's ends: char boundaries.
        *slot = line.get(start..end)?;
        start = end + 1;
        n += 1;
    }
    (n == N).then_some(out)
}

/// A numeric id; `u32::MAX` is `(uid_t)-1`, which setuid(2) reads as "leave unchanged".
fn parse_id(s: &str) -> Result<u32, UserError> {
    match s.trim().parse::<u32>() {
        Ok(id) if id != u32::MAX => Ok(id),
        _ => Err(UserError::BadId(s.to_string())),
    }
}

fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Resolves a `user[:group]` spec (None or empty: root).
pub fn resolve_user(
    spec: Option<&str>,
    passwd: &[PasswdEntry<'_>],
    groups: &[GroupEntry<'_>],
) -> Result<Identity, UserError> {
    let spec = spec.map(str::trim).unwrap_or("");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let entry = if is_numeric(user_part) {
        let uid = parse_id(user_part)?;
        passwd.iter().find(|e| e.uid == uid).copied().ok_or(uid)
    } else {
        Ok(passwd
            .iter()
            .find(|e| e.name == user_part)
            .copied()
            .ok_or_else(|| UserError::UnknownUser(user_part.to_string()))?)
    };
    let (uid, mut gid, home, name) = match entry {
        Ok(e) => (e.uid, e.gid, e.home, Some(e.name)),
        Err(uid) => (uid, 0, "/", None),
    };

    if let Some(group) = group_part {
        gid = if is_numeric(group) {
            parse_id(group)?
        } else {
            groups
                .iter()
                .find(|g| g.name == group)
                .map(|g| g.gid)
                .ok_or_else(|| UserError::UnknownGroup(group.to_string()))?
        };
    }

    let mut supplementary = vec![gid];
    if let Some(name) = name {
        for g in groups.iter().filter(|g| g.members().any(|m| m == name)) {
            if !supplementary.contains(&g.gid) {
                supplementary.push(g.gid);
            }
        }
    }
    let home = if home.is_empty() { "/" } else { home }.to_string();
    Ok(Identity {
        uid,
        gid,
        groups: supplementary,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# fixture, not the machine's /etc/passwd
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:App User:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
broken line without colons
bad:x:notanumber:1:x:/:/bin/sh
nohome:x:1001:1001:::/bin/sh
";
    const GROUP: &str = "\
root:x:0:
app:x:1000:
nogroup:x:65534:
audio:x:29:app,nobody
video:x:44: nobody , app
staff:x:50:root
garbage
";

    fn resolve(spec: Option<&str>) -> Result<Identity, UserError> {
        resolve_user(spec, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    #[test]
    fn fields_are_split_at_every_colon_and_too_few_is_none() {
        assert_eq!(fields::<4>("a:b::d"), Some(["a", "b", "", "d"]));
        assert_eq!(fields::<2>("a:b:c:d"), Some(["a", "b"]));
        assert_eq!(fields::<3>("ü:ß:"), Some(["ü", "ß", ""]));
        assert_eq!(fields::<4>("a:b:c"), None);
        assert_eq!(fields::<1>(""), Some([""]));
    }

    #[test]
    fn parsing_skips_malformed_lines() {
        let p = parse_passwd(PASSWD);
        assert_eq!(p.len(), 4);
        assert_eq!(p[1].home, "/home/app");
        let g = parse_group(GROUP);
        assert_eq!(g.len(), 6);
        assert_eq!(g[4].members().collect::<Vec<_>>(), ["nobody", "app"]);
    }

    #[test]
    fn default_is_root_with_its_groups() {
        let id = resolve(None).expect("root");
        assert_eq!((id.uid, id.gid), (0, 0));
        assert_eq!(id.groups, [0, 50]);
        assert_eq!(id.home, "/root");
        assert_eq!(resolve(Some("")), Ok(id));
    }

    #[test]
    fn name_gives_uid_gid_home_and_supplementary_groups() {
        let id = resolve(Some("nobody")).expect("nobody");
        assert_eq!((id.uid, id.gid), (65534, 65534));
        assert_eq!(id.groups, [65534, 29, 44]);
        assert_eq!(id.home, "/nonexistent");
    }

    #[test]
    fn numeric_uid_uses_passwd_when_present() {
        let id = resolve(Some("1000")).expect("app");
        assert_eq!(
            (id.uid, id.gid, id.home.as_str()),
            (1000, 1000, "/home/app")
        );
        assert_eq!(id.groups, [1000, 29, 44]);
    }

    #[test]
    fn numeric_uid_without_entry_gets_gid_0_and_root_home() {
        let id = resolve(Some("4242")).expect("numeric");
        assert_eq!((id.uid, id.gid, id.home.as_str()), (4242, 0, "/"));
        assert_eq!(id.groups, [0]);
        let id = resolve(Some("4242:4243")).expect("numeric pair");
        assert_eq!((id.uid, id.gid), (4242, 4243));
        assert_eq!(id.groups, [4243]);
    }

    #[test]
    fn explicit_group_by_name_or_number() {
        let id = resolve(Some("app:audio")).expect("app:audio");
        assert_eq!((id.uid, id.gid), (1000, 29));
        assert_eq!(id.groups, [29, 44]);
        let id = resolve(Some("app:7")).expect("app:7");
        assert_eq!(id.gid, 7);
        assert_eq!(resolve(Some("app:")).map(|i| i.gid), Ok(1000));
    }

    #[test]
    fn empty_home_becomes_root_dir() {
        assert_eq!(resolve(Some("nohome")).map(|i| i.home), Ok("/".into()));
    }

    #[test]
    fn unknown_names_and_bad_ids_are_errors() {
        assert_eq!(
            resolve(Some("ghost")),
            Err(UserError::UnknownUser("ghost".into()))
        );
        assert_eq!(
            resolve(Some("app:ghosts")),
            Err(UserError::UnknownGroup("ghosts".into()))
        );
        assert!(matches!(
            resolve(Some("4294967295")),
            Err(UserError::BadId(_))
        ));
        assert!(matches!(
            resolve(Some("99999999999")),
            Err(UserError::BadId(_))
        ));
    }

    #[test]
    fn numbers_work_without_any_passwd_file() {
        let id = resolve_user(Some("33:33"), &[], &[]).expect("numeric");
        assert_eq!((id.uid, id.gid), (33, 33));
        assert_eq!(
            resolve_user(Some("www"), &[], &[]),
            Err(UserError::UnknownUser("www".into()))
        );
    }
}
