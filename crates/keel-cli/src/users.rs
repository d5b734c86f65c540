//! `keel users`: the people who sign in to the dashboard.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use keel_app::users as auth;
use keel_store::UserRow;

use crate::Workspace;

#[derive(Debug, Args)]
pub(crate) struct UsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a user, or change the name, role or password of an existing one.
    /// The password comes from the variable named by --password-env
    /// (default KEEL_PASSWORD), never from a flag.
    Add {
        /// Their email: what they sign in with; a CSM's book is the accounts whose owner is this email.
        email: String,
        /// Display name (default: the part of the email before @).
        #[arg(long)]
        name: Option<String>,
        /// admin, leader or csm.
        #[arg(long, default_value = "csm")]
        role: String,
        /// The environment variable holding the password.
        #[arg(long, default_value = "KEEL_PASSWORD")]
        password_env: String,
    },
    /// List the workspace's users.
    List,
    /// Stop a user from signing in (their sessions end).
    Disable {
        /// Their email.
        email: String,
    },
}

/// Adds or updates a user; the stored row.
pub(crate) async fn add_user(
    ws: &Workspace,
    email: &str,
    name: Option<&str>,
    role: &str,
    password: &str,
) -> anyhow::Result<UserRow> {
    let email = email.trim().to_lowercase();
    anyhow::ensure!(
        email.contains('@') && !email.contains(char::is_whitespace),
        "{email:?} is not an email address"
    );
    anyhow::ensure!(auth::ROLES.contains(&role), "--role {role:?}: one of {}", auth::ROLES.join(", "));
    anyhow::ensure!(password.chars().count() >= 8, "the password must have at least 8 characters");
    let name = name.map_or_else(|| email.split('@').next().unwrap_or_default().to_owned(), str::to_owned);
    let row = UserRow {
        id: 0,
        workspace: ws.id,
        email,
        name,
        role: role.to_owned(),
        password_hash: auth::hash_password(password)?,
        created_at: crate::now(),
        disabled_at: None,
    };
    Ok(ws.store.upsert_user(&row).await?)
}

pub(crate) async fn run(ws: &Workspace, args: UsersArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        UsersCommand::Add { email, name, role, password_env } => {
            let password = std::env::var(&password_env).with_context(|| {
                format!("set the password in ${password_env} (it is never taken from a flag)")
            })?;
            let user = add_user(ws, &email, name.as_deref(), &role, &password).await?;
            crate::privacy::audit(ws, "user.added", &user.email, format!("role {}", user.role)).await?;
            say!("user {} ({}, {}) can sign in to workspace {:?}", user.email, user.name, user.role, ws.name);
        }
        UsersCommand::List => {
            let users = ws.store.users(ws.id).await?;
            say!("{:<36} {:<24} {:<8} {}", "EMAIL", "NAME", "ROLE", "DISABLED");
            for u in users {
                let disabled =
                    u.disabled_at.map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d").to_string());
                say!("{:<36} {:<24} {:<8} {}", u.email, u.name, u.role, disabled);
            }
        }
        UsersCommand::Disable { email } => {
            let email = email.trim().to_lowercase();
            let Some(mut user) = ws.store.user_by_email(&email).await?.filter(|u| u.workspace == ws.id)
            else {
                anyhow::bail!("workspace {:?} has no user {email}", ws.name);
            };
            user.disabled_at = Some(crate::now());
            ws.store.upsert_user(&user).await?;
            crate::privacy::audit(ws, "user.disabled", &email, String::new()).await?;
            say!("{email} can no longer sign in");
        }
    }
    Ok(ExitCode::SUCCESS)
}
