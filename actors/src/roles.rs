//! Who holds which role, and why: the grants configuration makes (by Google `sub`, by an e-mail
//! address Google verified, and, under dev login only, by dev account handle), and the rule that
//! reconciles them with a stored role at each sign-in and refresh.
//!
//! A role records its source. A role that configuration granted follows configuration (raised,
//! lowered or removed when it changes); a role granted on the command line or by an admin stays
//! until it is changed the same way, unless configuration grants more.

use std::collections::HashSet;

use crate::model::Role;

/// Where a user's role came from (`users.role_source`; `None` for a plain user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleSource {
    /// `ADMIN_SUBS`, `ADMIN_EMAILS`, `MODERATOR_SUBS`, `MODERATOR_EMAILS` (or `ADMIN_HANDLES`
    /// under dev login).
    Config,
    /// `aisocial admin grant`.
    CommandLine,
    /// `PUT /api/v1/admin/users/{handle}/role`.
    Admin,
}

impl RoleSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleSource::Config => "config",
            RoleSource::CommandLine => "command_line",
            RoleSource::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "config" => Some(RoleSource::Config),
            "command_line" => Some(RoleSource::CommandLine),
            "admin" => Some(RoleSource::Admin),
            _ => None,
        }
    }
}

/// The roles configuration grants. E-mail addresses are compared without case.
#[derive(Debug, Clone, Default)]
pub struct RoleGrants {
    pub admin_subs: HashSet<String>,
    pub admin_emails: HashSet<String>,
    pub moderator_subs: HashSet<String>,
    pub moderator_emails: HashSet<String>,
    /// Dev accounts made admin by handle (`ADMIN_HANDLES`): empty unless dev login is on.
    pub dev_admin_handles: HashSet<String>,
}

/// What sign-in knows of an account: its Google identity and verified address, or, for a dev
/// account, its handle.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity<'a> {
    pub google_sub: Option<&'a str>,
    /// Only an address Google verified.
    pub email: Option<&'a str>,
    /// Set only for an account dev login made.
    pub dev_handle: Option<&'a str>,
}

impl RoleGrants {
    /// The highest role configuration grants this identity, if any.
    pub fn configured(&self, who: Identity<'_>) -> Option<Role> {
        let email = who.email.map(str::to_ascii_lowercase);
        let listed = |subs: &HashSet<String>, emails: &HashSet<String>| {
            who.google_sub.is_some_and(|s| subs.contains(s))
                || email.as_ref().is_some_and(|e| emails.contains(e))
        };
        if listed(&self.admin_subs, &self.admin_emails)
            || who
                .dev_handle
                .is_some_and(|h| self.dev_admin_handles.contains(h))
        {
            Some(Role::Admin)
        } else if listed(&self.moderator_subs, &self.moderator_emails) {
            Some(Role::Moderator)
        } else {
            None
        }
    }
}

/// The role a user should hold now, given the stored one and what configuration grants; `None`
/// when the stored role stands.
pub fn reconcile(
    role: Role,
    source: Option<RoleSource>,
    configured: Option<Role>,
) -> Option<(Role, Option<RoleSource>)> {
    let from_config = source == Some(RoleSource::Config);
    match configured {
        Some(granted) if from_config && granted != role => Some((granted, source)),
        Some(granted) if !from_config && granted > role => {
            Some((granted, Some(RoleSource::Config)))
        }
        None if from_config => Some((Role::User, None)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants() -> RoleGrants {
        RoleGrants {
            admin_subs: HashSet::from(["sub-admin".to_owned()]),
            admin_emails: HashSet::from(["ops@example.com".to_owned()]),
            moderator_subs: HashSet::new(),
            moderator_emails: HashSet::from(["mod@example.com".to_owned()]),
            dev_admin_handles: HashSet::from(["admin".to_owned()]),
        }
    }

    #[test]
    fn configuration_grants_by_sub_verified_email_or_dev_handle_never_by_name() {
        let g = grants();
        let google = |sub, email| Identity {
            google_sub: Some(sub),
            email,
            dev_handle: None,
        };
        assert_eq!(g.configured(google("sub-admin", None)), Some(Role::Admin));
        assert_eq!(
            g.configured(google("x", Some("OPS@example.com"))),
            Some(Role::Admin)
        );
        assert_eq!(
            g.configured(google("x", Some("mod@example.com"))),
            Some(Role::Moderator)
        );
        assert_eq!(g.configured(google("x", Some("admin@example.com"))), None);
        let dev = |handle| Identity {
            dev_handle: Some(handle),
            ..Identity::default()
        };
        assert_eq!(g.configured(dev("admin")), Some(Role::Admin));
        assert_eq!(g.configured(dev("other")), None);
    }

    #[test]
    fn a_configured_role_follows_configuration_and_a_granted_one_stays() {
        use RoleSource::{Admin as ByAdmin, CommandLine, Config};
        // Granted, raised, lowered and removed by configuration.
        assert_eq!(
            reconcile(Role::User, None, Some(Role::Admin)),
            Some((Role::Admin, Some(Config)))
        );
        assert_eq!(
            reconcile(Role::Admin, Some(Config), Some(Role::Admin)),
            None
        );
        assert_eq!(
            reconcile(Role::Admin, Some(Config), Some(Role::Moderator)),
            Some((Role::Moderator, Some(Config)))
        );
        assert_eq!(
            reconcile(Role::Admin, Some(Config), None),
            Some((Role::User, None))
        );
        // A role an admin or the command line granted is not configuration's to take back.
        assert_eq!(reconcile(Role::Moderator, Some(ByAdmin), None), None);
        assert_eq!(
            reconcile(Role::Admin, Some(CommandLine), Some(Role::Moderator)),
            None
        );
        // But configuration may grant more.
        assert_eq!(
            reconcile(Role::Moderator, Some(CommandLine), Some(Role::Admin)),
            Some((Role::Admin, Some(Config)))
        );
        assert_eq!(reconcile(Role::User, None, None), None);
    }
}
