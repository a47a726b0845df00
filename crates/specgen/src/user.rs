//! Which user the process runs as: the security context's ids or name, else the image's USER,
//! resolved through the image's `/etc/passwd` and `/etc/group`.
//!
//! Additional gids are always set explicitly (the primary gid first), so the process never
//! keeps groups inherited from the runtime (the CVE-2023-25173 class of bugs).

use k8s_cri::v1::{LinuxContainerSecurityContext, SupplementalGroupsPolicy};
use oci_spec::runtime::User;

use crate::SpecError;

/// The effective identity of the container's process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The passwd name of `uid`, empty when the image's passwd does not list it.
    pub username: String,
}

impl ResolvedUser {
    pub(crate) fn oci_user(&self) -> User {
        let mut u = User::default();
        u.set_uid(self.uid);
        u.set_gid(self.gid);
        u.set_additional_gids(Some(self.additional_gids.clone()));
        u
    }
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some(PasswdEntry { name, uid, gid })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let gid = f.next()?.parse().ok()?;
        let members = f
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        Some(GroupEntry { name, gid, members })
    })
}

fn id(field: &'static str, value: i64) -> Result<u32, SpecError> {
    u32::try_from(value).map_err(|_| SpecError::InvalidId { field, value })
}

/// Resolves the process identity. `image_user` is the image config's `User` ("name", "uid",
/// "name:group", "uid:gid" and mixed forms).
pub fn resolve(
    sc: Option<&LinuxContainerSecurityContext>,
    image_user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, SpecError> {
    let passwd = passwd.unwrap_or("");
    let group = group.unwrap_or("");
    let by_uid = |uid: u32| passwd_entries(passwd).find(|e| e.uid == uid);
    let by_name = |name: &str| passwd_entries(passwd).find(|e| e.name == name);

    let run_as_user = sc.and_then(|s| s.run_as_user.as_ref()).map(|v| v.value);
    let run_as_username = sc.map(|s| s.run_as_username.as_str()).unwrap_or("");
    let run_as_group = sc.and_then(|s| s.run_as_group.as_ref()).map(|v| v.value);

    let (uid, mut gid, username) = if let Some(v) = run_as_user {
        let uid = id("run_as_user", v)?;
        let entry = by_uid(uid);
        (
            uid,
            entry.as_ref().map_or(0, |e| e.gid),
            entry.map_or("", |e| e.name),
        )
    } else if !run_as_username.is_empty() {
        let e = by_name(run_as_username)
            .ok_or_else(|| SpecError::UnknownUser(run_as_username.to_string()))?;
        (e.uid, e.gid, e.name)
    } else {
        let (user_part, group_part) = match image_user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (image_user, None),
        };
        let (uid, gid, name) = if user_part.is_empty() {
            if group_part.is_some() && image_user != ":" && !image_user.is_empty() {
                // ":group" without a user is malformed.
                return Err(SpecError::InvalidImageUser(image_user.to_string()));
            }
            let e = by_uid(0);
            (0, e.as_ref().map_or(0, |e| e.gid), e.map_or("", |e| e.name))
        } else if let Ok(uid) = user_part.parse::<u32>() {
            let e = by_uid(uid);
            (
                uid,
                e.as_ref().map_or(0, |e| e.gid),
                e.map_or("", |e| e.name),
            )
        } else {
            let e =
                by_name(user_part).ok_or_else(|| SpecError::UnknownUser(user_part.to_string()))?;
            (e.uid, e.gid, e.name)
        };
        let gid = match group_part {
            None | Some("") => gid,
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => group_entries(group)
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| SpecError::UnknownGroup(g.to_string()))?,
            },
        };
        (uid, gid, name)
    };
    if let Some(g) = run_as_group {
        gid = id("run_as_group", g)?;
    }

    let mut additional = vec![gid];
    let strict =
        sc.is_some_and(|s| s.supplemental_groups_policy == SupplementalGroupsPolicy::Strict as i32);
    if !strict && !username.is_empty() {
        // Groups that list the user as a member, as containerd's WithAdditionalGIDs: never the
        // group named after the user (its primary group in a sane image; a hostile one may
        // give it gid 0 and list the user in it).
        for g in group_entries(group) {
            if g.name != username && g.members.contains(&username) {
                additional.push(g.gid);
            }
        }
    }
    for &g in sc.map(|s| s.supplemental_groups.as_slice()).unwrap_or(&[]) {
        additional.push(id("supplemental_groups", g)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    additional.retain(|g| seen.insert(*g));

    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        username: username.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::Int64Value;

    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        daemon:x:1:1::/:/bin/false\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\naudio:x:29:app\n";

    fn sc() -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext::default()
    }

    fn res(
        sc: Option<&LinuxContainerSecurityContext>,
        user: &str,
    ) -> Result<ResolvedUser, SpecError> {
        resolve(sc, user, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn image_user_forms() {
        let r = res(None, "").unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids, r.username.as_str()),
            (0, 0, vec![0, 10], "root")
        );
        let r = res(None, "app").unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids),
            (1000, 1000, vec![1000, 10, 29])
        );
        let r = res(None, "1000:29").unwrap();
        assert_eq!((r.uid, r.gid, r.username.as_str()), (1000, 29, "app"));
        let r = res(None, "app:wheel").unwrap();
        assert_eq!(r.gid, 10);
        let r = res(None, "4242").unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids, r.username.as_str()),
            (4242, 0, vec![0], "")
        );
        assert_eq!(
            res(None, "nobody"),
            Err(SpecError::UnknownUser("nobody".into()))
        );
        assert_eq!(
            res(None, "app:nogroup"),
            Err(SpecError::UnknownGroup("nogroup".into()))
        );
        assert_eq!(
            res(None, ":10"),
            Err(SpecError::InvalidImageUser(":10".into()))
        );
    }

    #[test]
    fn security_context_wins() {
        let mut s = sc();
        s.run_as_user = Some(Int64Value { value: 1 });
        let r = res(Some(&s), "app").unwrap();
        assert_eq!((r.uid, r.gid, r.username.as_str()), (1, 1, "daemon"));
        s.run_as_group = Some(Int64Value { value: 5 });
        assert_eq!(res(Some(&s), "app").unwrap().gid, 5);
        let mut s = sc();
        s.run_as_username = "app".into();
        assert_eq!(res(Some(&s), "").unwrap().uid, 1000);
        s.run_as_username = "ghost".into();
        assert_eq!(
            res(Some(&s), ""),
            Err(SpecError::UnknownUser("ghost".into()))
        );
        let mut s = sc();
        s.run_as_user = Some(Int64Value { value: -1 });
        assert_eq!(
            res(Some(&s), ""),
            Err(SpecError::InvalidId {
                field: "run_as_user",
                value: -1
            })
        );
    }

    #[test]
    fn supplemental_groups_policy() {
        let mut s = sc();
        s.run_as_username = "app".into();
        s.supplemental_groups = vec![2000, 10];
        assert_eq!(
            res(Some(&s), "").unwrap().additional_gids,
            vec![1000, 10, 29, 2000]
        );
        s.supplemental_groups_policy = SupplementalGroupsPolicy::Strict as i32;
        assert_eq!(
            res(Some(&s), "").unwrap().additional_gids,
            vec![1000, 2000, 10]
        );
        s.supplemental_groups = vec![-3];
        assert!(matches!(
            res(Some(&s), ""),
            Err(SpecError::InvalidId { .. })
        ));
    }

    #[test]
    fn the_group_named_after_the_user_adds_nothing() {
        let group = "root:x:0:\napp:x:0:app\nwheel:x:10:app\n";
        let r = resolve(None, "app", Some(PASSWD), Some(group)).unwrap();
        assert_eq!((r.gid, r.additional_gids), (1000, vec![1000, 10]));
    }

    #[test]
    fn no_passwd_file() {
        let r = resolve(None, "", None, None).unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids), (0, 0, vec![0]));
        assert_eq!(
            resolve(None, "app", None, None),
            Err(SpecError::UnknownUser("app".into()))
        );
    }
}
