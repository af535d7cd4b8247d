//! The role settings: who configuration makes an admin or a moderator, by Google `sub` or an
//! e-mail address Google verified, and, under dev login only, by dev account handle.

use std::collections::HashSet;

use aisocial_actors::roles::RoleGrants;

use super::{ConfigError, ServeArgs, bad};

/// The checked role grants of `args`.
pub fn role_grants(args: &ServeArgs) -> Result<RoleGrants, ConfigError> {
    let dev_admin_handles = list(&args.admin_handles)
        .map(|h| {
            aisocial_actors::ids::Handle::parse(h)
                .map(|h| h.as_str().to_owned())
                .map_err(|e| bad("ADMIN_HANDLES", format!("{h:?}: {e}")))
        })
        .collect::<Result<HashSet<_>, _>>()?;
    if !dev_admin_handles.is_empty() && !args.auth_dev_login {
        return Err(bad(
            "ADMIN_HANDLES",
            "grants admin by handle, which works only with dev login (AUTH_DEV_LOGIN=true): \
             anyone can pick a name under Google sign-in. Name admins with ADMIN_SUBS or \
             ADMIN_EMAILS, or grant the role with `aisocial admin grant`",
        ));
    }
    Ok(RoleGrants {
        admin_subs: subs(&args.admin_subs),
        admin_emails: emails("ADMIN_EMAILS", &args.admin_emails)?,
        moderator_subs: subs(&args.moderator_subs),
        moderator_emails: emails("MODERATOR_EMAILS", &args.moderator_emails)?,
        dev_admin_handles,
    })
}

fn list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn subs(raw: &str) -> HashSet<String> {
    list(raw).map(str::to_owned).collect()
}

fn emails(variable: &'static str, raw: &str) -> Result<HashSet<String>, ConfigError> {
    list(raw)
        .map(|email| match email.split_once('@') {
            Some((local, domain)) if !local.is_empty() && domain.contains('.') => {
                Ok(email.to_ascii_lowercase())
            }
            _ => Err(bad(variable, format!("{email:?} is not an e-mail address"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::{Cli, Command};

    fn grants(args: &[&str]) -> Result<aisocial_actors::roles::RoleGrants, String> {
        let mut argv = vec!["aisocial", "serve"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Serve(serve) = cli.command else {
            return Err("not serve".into());
        };
        super::role_grants(&serve).map_err(|e| e.to_string())
    }

    #[test]
    fn admin_handles_need_dev_login() {
        let refused = grants(&["--admin-handles=ops_admin"])
            .err()
            .unwrap_or_default();
        assert!(refused.starts_with("ADMIN_HANDLES"), "{refused}");
        let allowed = grants(&["--admin-handles=ops_admin", "--auth-dev-login=true"]);
        assert!(allowed.is_ok_and(|g| g.dev_admin_handles.contains("ops_admin")));
    }

    #[test]
    fn subs_and_verified_emails_are_listed_and_emails_checked() {
        let g = grants(&[
            "--admin-subs=1234, 5678",
            "--admin-emails=Ops@Example.com",
            "--moderator-emails=mod@example.com",
        ]);
        let Ok(g) = g else {
            panic!("refused: {g:?}");
        };
        assert_eq!(g.admin_subs.len(), 2);
        assert!(g.admin_emails.contains("ops@example.com"));
        assert!(g.moderator_emails.contains("mod@example.com"));
        let refused = grants(&["--moderator-emails=nobody"])
            .err()
            .unwrap_or_default();
        assert!(refused.starts_with("MODERATOR_EMAILS"), "{refused}");
    }
}
