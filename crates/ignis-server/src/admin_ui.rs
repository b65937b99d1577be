//! The Socket.IO Admin UI on the server's Socket.IO path (`ignis_admin`): off unless
//! `--admin-ui-auth user:bcrypt-hash` is given.

use std::io::BufRead;
use std::process::ExitCode;

use ignis_admin::{AdminOptions, BasicAuth};

use crate::config::ConfigError;

/// The admin UI's flags (flattened into the server's).
#[derive(Debug, Default, clap::Args)]
pub(crate) struct AdminUiArgs {
    /// Turns on the Socket.IO Admin UI (@socket.io/admin-ui) on the namespace `/admin` of the
    /// Socket.IO path, for this user and the bcrypt hash of its password, as `user:hash`
    /// (`ignis-server admin-ui-hash` makes one). Prefer the environment variable or the file:
    /// a flag shows in `ps` [default: off].
    #[arg(long, env = "APP_ENV_ADMIN_UI_AUTH", hide_env_values = true)]
    pub admin_ui_auth: Option<String>,
    /// The admin UI may look but not act: no emit, join, leave or disconnect [default: off].
    #[arg(long, env = "APP_ENV_ADMIN_UI_READ_ONLY")]
    pub admin_ui_read_only: bool,
}

/// The admin UI of the effective configuration.
#[derive(Debug, Clone)]
pub(crate) struct AdminUiSettings {
    pub auth: BasicAuth,
    pub read_only: bool,
}

impl AdminUiSettings {
    /// From the flags (or environment), then the file's `admin_ui_auth` and `admin_ui_read_only`.
    pub(crate) fn load(
        args: AdminUiArgs,
        file_auth: Option<String>,
        file_read_only: Option<bool>,
    ) -> Result<Option<AdminUiSettings>, ConfigError> {
        let read_only = args.admin_ui_read_only || file_read_only.unwrap_or(false);
        let Some(text) = args.admin_ui_auth.or(file_auth).filter(|s| !s.is_empty()) else {
            if read_only {
                return Err(ConfigError::Invalid {
                    name: "admin UI read-only",
                    reason: "is set but the admin UI is off (set the admin UI auth)".into(),
                });
            }
            return Ok(None);
        };
        let auth = BasicAuth::parse(&text).map_err(|e| ConfigError::Invalid {
            name: "admin UI auth",
            reason: e.to_string(),
        })?;
        Ok(Some(AdminUiSettings { auth, read_only }))
    }

    pub(crate) fn options(&self) -> AdminOptions {
        AdminOptions {
            read_only: self.read_only,
            ..AdminOptions::new(Some(self.auth.clone()))
        }
    }
}

/// `ignis-server admin-ui-hash`: the bcrypt hash of the password on the first line of stdin.
pub(crate) fn print_hash(cost: u32) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("ignis-server: cannot read the password: {e}");
        return ExitCode::from(2);
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("ignis-server: give the password on stdin");
        return ExitCode::from(2);
    }
    match ignis_admin::hash_password(password, cost) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ignis-server: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Cli, Config};
    use clap::Parser;

    const HASH: &str = "$2b$04$YUT3eGmXnlPTnNtRPLl6Du3zb.W5H/j5C9.8LzPurUTmOD1eDKQ9a";

    #[test]
    fn off_by_default_on_with_credentials_from_flag_or_file() {
        let config = Config::load(Cli::parse_from(["ignis-server"])).unwrap();
        assert!(config.admin_ui.is_none());

        let auth = format!("admin:{HASH}");
        let config = Config::load(Cli::parse_from([
            "ignis-server",
            "--admin-ui-auth",
            &auth,
            "--admin-ui-read-only",
        ]))
        .unwrap();
        let admin = config.admin_ui.unwrap();
        assert_eq!(admin.auth.username(), "admin");
        assert!(admin.read_only);

        let dir = std::env::temp_dir().join(format!("ignis-admin-ui-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ignis.toml");
        std::fs::write(
            &file,
            format!("admin_ui_auth = \"ops:{HASH}\"\nadmin_ui_read_only = false\n"),
        )
        .unwrap();
        let config = Config::load(Cli::parse_from([
            "ignis-server",
            "--config",
            file.to_str().unwrap(),
        ]))
        .unwrap();
        let admin = config.admin_ui.unwrap();
        assert_eq!(admin.auth.username(), "ops");
        assert!(!admin.read_only);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_admin_ui_settings_are_named() {
        for args in [
            vec!["ignis-server", "--admin-ui-auth", "admin"],
            vec!["ignis-server", "--admin-ui-auth", "admin:not-a-hash"],
            vec!["ignis-server", "--admin-ui-read-only"],
        ] {
            let err = Config::load(Cli::parse_from(args.clone())).unwrap_err();
            assert!(err.to_string().contains("admin UI"), "{args:?}: {err}");
        }
    }
}
