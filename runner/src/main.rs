//! `azwi-policy-runner`: evaluate the compiled policy like `kwctl run` does, without kwctl.

use std::path::PathBuf;

use anyhow::{Context, Result};
use azwi_policy_runner::{Policy, Session};
use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Parser)]
#[command(
    about = "Evaluate the compiled policy in a waPC host, answering host calls from a kwctl session"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate an admission request; prints the admission response, then the resulting object.
    Run {
        /// The policy module.
        #[arg(long, default_value = "policy.wasm")]
        policy: PathBuf,
        /// AdmissionReview (or bare request) JSON file.
        #[arg(short = 'r', long)]
        request_path: PathBuf,
        /// Settings as inline JSON.
        #[arg(long, conflicts_with = "settings_path")]
        settings_json: Option<String>,
        /// Settings as a JSON or YAML file.
        #[arg(long)]
        settings_path: Option<PathBuf>,
        /// kwctl record/replay session answering the host calls.
        #[arg(long)]
        replay_host_capabilities_interactions: Option<PathBuf>,
    },
    /// Read an admission response (as `kwctl run` prints it) on stdin and print the request's
    /// object with its patch applied: what the API server would persist.
    ApplyResponse {
        #[arg(short = 'r', long)]
        request_path: PathBuf,
    },
    /// Validate settings; prints the policy's verdict.
    ValidateSettings {
        #[arg(long, default_value = "policy.wasm")]
        policy: PathBuf,
        #[arg(long)]
        settings_json: String,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run {
            policy,
            request_path,
            settings_json,
            settings_path,
            replay_host_capabilities_interactions,
        } => {
            let settings: Value = match (settings_json, settings_path) {
                (Some(s), _) => serde_json::from_str(&s).context("--settings-json")?,
                (None, Some(p)) => serde_yaml::from_str(&std::fs::read_to_string(&p)?)
                    .with_context(|| format!("parsing {}", p.display()))?,
                (None, None) => Value::Object(Default::default()),
            };
            let request: Value = serde_json::from_str(&std::fs::read_to_string(&request_path)?)
                .with_context(|| format!("parsing {}", request_path.display()))?;
            let session = match replay_host_capabilities_interactions {
                Some(p) => Session::load(p)?,
                None => Session::empty(),
            };
            let policy = Policy::load(&policy)?;
            let verdict = policy.validate_settings(&settings)?;
            if verdict["valid"] != Value::Bool(true) {
                anyhow::bail!("the policy refuses these settings: {}", verdict["message"]);
            }
            let eval = policy.validate(&request, &settings, &session)?;
            println!("{}", serde_json::to_string(&eval.admission_response)?);
            if eval.patch.is_some() {
                println!("# resulting object");
                println!("{}", serde_json::to_string_pretty(&eval.object)?);
            }
        }
        Command::ApplyResponse { request_path } => {
            let request: Value = serde_json::from_str(&std::fs::read_to_string(&request_path)?)
                .with_context(|| format!("parsing {}", request_path.display()))?;
            let mut stdin = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut stdin)?;
            // kwctl may print log lines before the response: take the last JSON line.
            let response: Value = stdin
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok())
                .context("no admission response JSON on stdin")?;
            let object = azwi_policy_runner::apply_admission_response(&request, &response)?;
            println!("{}", serde_json::to_string_pretty(&object)?);
        }
        Command::ValidateSettings {
            policy,
            settings_json,
        } => {
            let verdict = Policy::load(&policy)?.validate_settings_raw(settings_json.as_bytes())?;
            println!("{}", serde_json::to_string(&verdict)?);
        }
    }
    Ok(())
}
