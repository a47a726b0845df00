//! `crust-testenv`: run a local registry with the test images, or push a big image.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use crust_testenv::{Auth, Registry, RegistryOptions};

#[derive(Parser)]
#[command(
    name = "crust-testenv",
    about = "Local OCI registry with crust's test images"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthKind {
    /// htpasswd basic auth
    Basic,
    /// bearer tokens from an in-process token server
    Token,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start docker-registry on 127.0.0.1, push the standard images, wait for SIGINT/SIGTERM.
    Serve {
        /// Port on 127.0.0.1 (default: a free one).
        #[arg(long)]
        port: Option<u16>,
        /// Require these credentials (user:pass).
        #[arg(long, value_name = "USER:PASS")]
        auth: Option<String>,
        /// How --auth is checked.
        #[arg(long, value_enum, default_value = "basic")]
        auth_kind: AuthKind,
        /// Also print each image as a JSON line (reference, digests, size).
        #[arg(long)]
        json: bool,
    },
    /// Push a big image of incompressible layers into a running registry.
    PushBig {
        /// HOST:PORT of the registry.
        #[arg(long)]
        registry: String,
        /// Repository name, optionally with :tag (default tag latest).
        #[arg(long)]
        name: String,
        #[arg(long)]
        layers: usize,
        #[arg(long)]
        bytes_per_layer: usize,
        /// Credentials (user:pass) for a registry that needs them.
        #[arg(long, value_name = "USER:PASS")]
        auth: Option<String>,
    },
    /// Push a pause image (busybox running `sleep infinity`) into a running registry.
    PushPause {
        /// HOST:PORT of the registry.
        #[arg(long)]
        registry: String,
        /// Repository name, optionally with :tag (default tag latest).
        #[arg(long)]
        name: String,
    },
}

fn split_auth(auth: &str) -> Result<(String, String)> {
    match auth.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok((u.to_string(), p.to_string())),
        _ => bail!("--auth wants USER:PASS, got {auth:?}"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Serve {
            port,
            auth,
            auth_kind,
            json,
        } => serve(port, auth, auth_kind, json).await,
        Cmd::PushBig {
            registry,
            name,
            layers,
            bytes_per_layer,
            auth,
        } => {
            let creds = auth.as_deref().map(split_auth).transpose()?;
            let start = std::time::Instant::now();
            let pushed = crust_testenv::push_big_image_to(
                &registry,
                &name,
                layers,
                bytes_per_layer,
                creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
            )
            .await?;
            println!("{}", pushed.reference);
            println!("manifest: {}", pushed.manifest_digest);
            println!("size: {}", pushed.size);
            eprintln!("pushed in {:.1?}", start.elapsed());
            Ok(())
        }
        Cmd::PushPause { registry, name } => {
            let pushed = crust_testenv::push_pause_image_to(&registry, &name, None).await?;
            println!("{}", pushed.reference);
            Ok(())
        }
    }
}

async fn serve(port: Option<u16>, auth: Option<String>, kind: AuthKind, json: bool) -> Result<()> {
    let auth = match auth.as_deref().map(split_auth).transpose()? {
        None => Auth::None,
        Some((user, pass)) => match kind {
            AuthKind::Basic => Auth::Htpasswd { user, pass },
            AuthKind::Token => Auth::Token { user, pass },
        },
    };
    let reg = Registry::start_with(RegistryOptions { port, auth }).await?;
    let images = crust_testenv::push_standard_images(&reg, None).await?;
    for (_, pushed) in images.all() {
        if json {
            println!("{}", serde_json::to_string(pushed)?);
        } else {
            println!("{}", pushed.reference);
        }
    }
    if let Some(realm) = reg.token_realm() {
        println!("token realm: {realm}");
    }
    println!("storage: {}", reg.storage_dir().display());
    println!("registry: {}", reg.host());
    use std::io::Write;
    std::io::stdout().flush()?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("SIGINT handler")?,
        _ = term.recv() => {}
    }
    drop(reg);
    Ok(())
}
