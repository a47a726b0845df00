//! `crustctl pull`: pulls an image from a registry.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Args;
use k8s_cri::v1::{AuthConfig, ImageSpec, PullImageRequest};

use crate::client::Ctx;
use crate::config;

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Image to pull: NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
    /// Use USERNAME[:PASSWORD] for accessing the registry (asks for the password when
    /// it is left out)
    #[arg(
        long,
        env = "CRICTL_CREDS",
        value_name = "USERNAME[:PASSWORD]",
        hide_env_values = true
    )]
    pub creds: Option<String>,
    /// Use AUTH_STRING for accessing the registry. AUTH_STRING is a base64 encoded
    /// 'USERNAME[:PASSWORD]'
    #[arg(
        long,
        env = "CRICTL_AUTH",
        value_name = "AUTH_STRING",
        hide_env_values = true
    )]
    pub auth: Option<String>,
    /// Use USERNAME for accessing the registry. The password is asked for unless
    /// --password is given
    #[arg(short, long, value_name = "USERNAME")]
    pub username: Option<String>,
    /// Password for --username
    #[arg(short, long, value_name = "PASSWORD", requires = "username")]
    pub password: Option<String>,
    /// Use pod-config.[json|yaml] (a crictl pod sandbox config) for the pull
    #[arg(long, value_name = "pod-config.[json|yaml]")]
    pub pod_config: Option<PathBuf>,
    /// Annotation to be set on the pulled image (KEY=VALUE; repeatable)
    #[arg(short, long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Maximum time to be used for pulling the image, disabled if set to 0s
    #[arg(long, visible_alias = "pt", env = "CRICTL_PULL_TIMEOUT", default_value = "0s",
          value_parser = crate::duration::parse)]
    pub pull_timeout: Duration,
}

pub async fn run(ctx: &Ctx, args: PullArgs, out: &mut dyn Write) -> Result<()> {
    if args.image.is_empty() {
        bail!("image name cannot be empty");
    }
    let auth = get_auth(
        args.creds.as_deref(),
        args.auth.as_deref(),
        args.username.as_deref(),
        args.password.as_deref(),
        read_password,
    )?;
    let sandbox_config = match &args.pod_config {
        Some(path) => Some(config::load_pod_sandbox_config(path).context("load podSandboxConfig")?),
        None => None,
    };
    let annotations = parse_key_values(&args.annotations)?;
    let request = PullImageRequest {
        image: Some(ImageSpec {
            image: args.image.clone(),
            annotations,
            ..Default::default()
        }),
        auth,
        sandbox_config,
    };

    let mut client = ctx.image().await?;
    // Pulls take as long as they take unless --pull-timeout says otherwise.
    let timeout = (!args.pull_timeout.is_zero()).then_some(args.pull_timeout);
    let mut req = tonic::Request::new(request);
    if let Some(timeout) = timeout {
        req.set_timeout(timeout);
    }
    let shown = format!("{:?}", redacted(req.get_ref()));
    let r = ctx
        .invoke("PullImage", timeout, req, &shown, |req| {
            client.pull_image(req)
        })
        .await
        .context("pulling image")?;
    writeln!(out, "Image is up to date for {}", r.image_ref)?;
    Ok(())
}

/// The request with its secrets blanked, for `-D` logs.
fn redacted(request: &PullImageRequest) -> PullImageRequest {
    let mut request = request.clone();
    if let Some(auth) = request.auth.as_mut() {
        for secret in [
            &mut auth.password,
            &mut auth.auth,
            &mut auth.identity_token,
            &mut auth.registry_token,
        ] {
            if !secret.is_empty() {
                *secret = "<redacted>".to_owned();
            }
        }
    }
    request
}

/// crictl's `parseCreds`: `USER[:PASSWORD]`; the password is `None` without a colon.
pub fn parse_creds(creds: &str) -> Result<(String, Option<String>)> {
    if creds.is_empty() {
        bail!("credentials can't be empty");
    }
    match creds.split_once(':') {
        None => Ok((creds.to_owned(), None)),
        Some(("", _)) => bail!("username can't be empty"),
        Some((user, password)) => Ok((user.to_owned(), Some(password.to_owned()))),
    }
}

/// crictl's `getAuth`, plus `--password`. `prompt` supplies a password not given.
pub fn get_auth(
    creds: Option<&str>,
    auth: Option<&str>,
    username: Option<&str>,
    password: Option<&str>,
    prompt: impl FnOnce() -> Result<String>,
) -> Result<Option<AuthConfig>> {
    let creds = creds.filter(|c| !c.is_empty());
    let auth = auth.filter(|a| !a.is_empty());
    if let Some(username) = username.filter(|u| !u.is_empty()) {
        let password = match password {
            Some(password) => password.to_owned(),
            None => prompt()?,
        };
        return Ok(Some(AuthConfig {
            username: username.to_owned(),
            password,
            ..Default::default()
        }));
    }
    match (creds, auth) {
        (Some(_), Some(_)) => bail!("both `--creds` and `--auth` are specified"),
        (Some(creds), None) => {
            let (username, password) = parse_creds(creds)?;
            let password = match password {
                Some(password) => password,
                None => prompt()?,
            };
            Ok(Some(AuthConfig {
                username,
                password,
                ..Default::default()
            }))
        }
        (None, Some(auth)) => {
            base64::engine::general_purpose::STANDARD
                .decode(auth)
                .context("--auth is not base64 encoded")?;
            Ok(Some(AuthConfig {
                auth: auth.to_owned(),
                ..Default::default()
            }))
        }
        (None, None) => Ok(None),
    }
}

/// crictl's `parseLabelStringSlice`: `KEY=VALUE` each.
pub fn parse_key_values(items: &[String]) -> Result<HashMap<String, String>> {
    items
        .iter()
        .map(|item| {
            let parts: Vec<&str> = item.split('=').collect();
            match parts[..] {
                [key, value] => Ok((key.to_owned(), value.to_owned())),
                _ => bail!("incorrectly specified label: {item}"),
            }
        })
        .collect()
}

/// Asks for a password on the terminal without echo; reads a line when stdin is not a
/// terminal.
pub fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
        eprint!("Enter Password:");
        let saved = tcgetattr(&stdin).context("read terminal settings")?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turn off echo")?;
        let read = stdin.lock().read_line(&mut line);
        tcsetattr(&stdin, OptionalActions::Now, &saved).context("restore terminal settings")?;
        eprintln!();
        read.context("read password")?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .context("read password from stdin")?;
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_prompt() -> Result<String> {
        panic!("unexpected password prompt")
    }

    #[test]
    fn creds() {
        assert_eq!(parse_creds("u:p").unwrap(), ("u".into(), Some("p".into())));
        assert_eq!(
            parse_creds("u:p:q").unwrap(),
            ("u".into(), Some("p:q".into()))
        );
        assert_eq!(
            parse_creds("u:").unwrap(),
            ("u".into(), Some(String::new()))
        );
        assert_eq!(parse_creds("u").unwrap(), ("u".into(), None));
        assert!(parse_creds("").is_err());
        assert!(parse_creds(":p").is_err());
    }

    #[test]
    fn auth_configs() {
        let a = get_auth(Some("user:pw"), None, None, None, no_prompt)
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str(), a.auth.as_str()),
            ("user", "pw", "")
        );

        let a = get_auth(Some("user"), None, None, None, || Ok("typed".into()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str()),
            ("user", "typed")
        );

        let a = get_auth(None, Some("dXNlcjpwdw=="), None, None, no_prompt)
            .unwrap()
            .unwrap();
        assert_eq!((a.username.as_str(), a.auth.as_str()), ("", "dXNlcjpwdw=="));

        let a = get_auth(None, None, Some("u"), Some("p"), no_prompt)
            .unwrap()
            .unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));

        let a = get_auth(None, None, Some("u"), None, || Ok("asked".into()))
            .unwrap()
            .unwrap();
        assert_eq!(a.password, "asked");

        assert!(get_auth(None, None, None, None, no_prompt)
            .unwrap()
            .is_none());
        assert!(get_auth(Some("a:b"), Some("YTpi"), None, None, no_prompt).is_err());
        assert!(get_auth(None, Some("not base64!"), None, None, no_prompt).is_err());
    }

    #[test]
    fn annotations() {
        let m = parse_key_values(&["a=1".into(), "b=".into()]).unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "");
        assert!(parse_key_values(&["novalue".into()]).is_err());
        assert!(parse_key_values(&["a=b=c".into()]).is_err());
    }
}
