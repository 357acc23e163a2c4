//! ringback: an IVR and callback telephony server.
//!
//! `ringback serve` answers SIP calls and runs the dialplans in
//! `dialplans/`; `ringback check` validates dialplans; `ringback simulate`
//! walks a caller through one without a phone; `ringback customers
//! import|export` moves the customer directory to and from CSV.

mod acd_task;
mod admission;
mod agent_devices;
mod allow;
mod api;
mod api_access;
mod browser;
mod call;
mod callback_attempt;
mod callbacks;
mod cluster;
mod config;
mod customers_cli;
mod directory;
mod drain;
mod endpoint;
mod live;
mod lookups;
mod media;
mod metrics;
mod outbound;
mod plan_loader;
mod prompt_loader;
mod recording;
mod registrar;
mod server;
mod snapshot;
mod store;

mod trunk;
mod trunk_registration;
mod watchdog;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use ringback_dialplan::{parse_sim_inputs, CheckContext, Severity, SimScript};

use crate::config::Config;
use crate::plan_loader::{load_dir, load_file};

#[derive(Parser)]
#[command(
    name = "ringback",
    version,
    about = "IVR and callback telephony server"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "ringback.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SIP/RTP server.
    Serve {
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate dialplans: every problem as `file:line:col: message`; exit 1 on errors.
    Check {
        /// Dialplan files or directories (default: the configured dialplan directory).
        paths: Vec<PathBuf>,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Print the path a caller would take through a dialplan.
    Simulate {
        /// The dialplan file.
        file: PathBuf,
        /// Keys pressed, comma-separated; `w` waits for a timeout (e.g. `1,2,w,0`).
        #[arg(long, default_value = "")]
        digits: String,
        /// Time of the call (RFC 3339), for business hours; default now.
        #[arg(long)]
        at: Option<String>,
        /// Caller number.
        #[arg(long, default_value = "+15550123")]
        caller: String,
        /// What a lookup answers: `NAME=FILE.json` (repeatable); a lookup
        /// not given fails, as an unreachable endpoint does.
        #[arg(long = "lookup", value_name = "NAME=FILE.json")]
        lookups: Vec<String>,
    },
    /// The customer directory: import a CSV file, export it.
    Customers {
        #[command(subcommand)]
        action: CustomersAction,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum CustomersAction {
    /// Add the customers of a CSV file (a header row naming at least
    /// `number` and `name`): every bad row is reported as `FILE:LINE:
    /// reason`, and then nothing is imported.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Replace the whole directory with the file's customers.
        #[arg(long)]
        replace: bool,
    },
    /// Write the directory to standard output as CSV, in the format
    /// `import` reads.
    Export,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("ringback {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Serve { log_format } => {
            init_logging(log_format);
            let cfg = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = rt.block_on(server::serve(cfg, cli.config.clone()));
            // Calls are hung up and records flushed by now; blocking helper
            // threads (file watcher, database workers) are not waited for.
            rt.shutdown_timeout(std::time::Duration::from_millis(100));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { paths, strict } => check(&cli.config, paths, strict),
        Command::Simulate {
            file,
            digits,
            at,
            caller,
            lookups,
        } => simulate(&cli.config, &file, &digits, at.as_deref(), caller, &lookups),
        Command::Customers { action } => {
            let cfg = match config_or_default(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match action {
                CustomersAction::Import { file, replace } => {
                    customers_cli::import(&cfg, &file, replace)
                }
                CustomersAction::Export => customers_cli::export(&cfg),
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RINGBACK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// The config if the file exists; defaults otherwise (check/simulate work
/// on a dialplan directory without a server config).
fn config_or_default(path: &Path) -> Result<Config, String> {
    if path.exists() {
        Config::load(path).map_err(|e| e.to_string())
    } else {
        Config::parse(
            &std::env::current_dir()
                .unwrap_or_default()
                .join("ringback.toml"),
            "",
        )
        .map_err(|e| e.to_string())
    }
}

fn check_ctx(cfg: &Config, config_exists: bool) -> Result<CheckContext, String> {
    let (prompts, problems) = snapshot::load_prompts(&cfg.prompts.dir).map_err(|e| e.join("\n"))?;
    for p in problems {
        eprintln!("warning: {p}");
    }
    for (tag, name) in prompts.untranslated_defaults() {
        eprintln!(
            "warning: {}: `{name}` has no default version ({}/{name}.wav), so a dialplan cannot play it",
            cfg.prompts.dir.join(tag).join(format!("{name}.wav")).display(),
            cfg.prompts.dir.display()
        );
    }
    let mut ctx = snapshot::check_context(cfg, &prompts);
    if !config_exists {
        // Without a server config we cannot know the queues.
        ctx.queues = None;
    }
    if !cfg.prompts.dir.is_dir() {
        ctx.prompts = None;
    }
    Ok(ctx)
}

/// The configuration (or defaults) and what dialplans are checked against;
/// on failure the message is printed and the exit code returned.
/// How long each prompt in `dir` plays, so
/// `simulate` can place timed keys (`0@1.5`) where a real call would.
fn prompt_lengths(dir: &Path) -> std::collections::HashMap<String, std::time::Duration> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Default::default();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "wav") {
                return None;
            }
            let prompt = prompt_loader::load_wav(&path).ok()?;
            let name = path.file_stem()?.to_string_lossy().into_owned();
            Some((name, prompt.duration()))
        })
        .collect()
}

fn config_and_context(config_path: &Path) -> Result<(Config, CheckContext), ExitCode> {
    let fail = |e: String| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    };
    let cfg = config_or_default(config_path).map_err(fail)?;
    let ctx = check_ctx(&cfg, config_path.exists()).map_err(fail)?;
    Ok((cfg, ctx))
}

fn check(config_path: &Path, paths: Vec<PathBuf>, strict: bool) -> ExitCode {
    let (cfg, ctx) = match config_and_context(config_path) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let paths = if paths.is_empty() {
        vec![cfg.dialplans.dir.clone()]
    } else {
        paths
    };
    let mut errors = 0usize;
    let mut warnings = 0usize;
    let mut plans = 0usize;
    for p in &paths {
        let result = if p.is_dir() {
            load_dir(p, &ctx).map(|(set, w)| (set.len(), w))
        } else {
            load_file(p, &ctx).map(|(_, w)| (1, w))
        };
        match result {
            Ok((n, w)) => {
                plans += n;
                for d in &w {
                    println!("{d}");
                }
                warnings += w.len();
            }
            Err(diags) => {
                for d in &diags {
                    println!("{d}");
                }
                errors += diags
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                warnings += diags
                    .iter()
                    .filter(|d| d.severity != Severity::Error)
                    .count();
            }
        }
    }
    if errors > 0 || (strict && warnings > 0) {
        eprintln!("check failed: {errors} error(s), {warnings} warning(s)");
        ExitCode::FAILURE
    } else {
        eprintln!("ok: {plans} dialplan(s), {warnings} warning(s)");
        ExitCode::SUCCESS
    }
}

fn simulate(
    config_path: &Path,
    file: &Path,
    digits: &str,
    at: Option<&str>,
    caller: String,
    lookup_files: &[String],
) -> ExitCode {
    let (cfg, ctx) = match config_and_context(config_path) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let plan = match load_file(file, &ctx) {
        Ok((p, _)) => Arc::new(p),
        Err(diags) => {
            for d in &diags {
                println!("{d}");
            }
            eprintln!("the dialplan has errors; fix them first (see above)");
            return ExitCode::FAILURE;
        }
    };
    let inputs = match parse_sim_inputs(digits) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: --digits: {e}");
            return ExitCode::from(2);
        }
    };
    let now = match at {
        None => chrono::Utc::now(),
        Some(s) => {
            match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(t) => t.with_timezone(&chrono::Utc),
                Err(e) => {
                    eprintln!("error: --at `{s}` is not an RFC 3339 time (e.g. 2026-11-23T10:00:00Z): {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let mut lookups = std::collections::HashMap::new();
    for arg in lookup_files {
        let Some((name, file)) = arg.split_once('=') else {
            eprintln!("error: --lookup `{arg}`: expected NAME=FILE.json");
            return ExitCode::from(2);
        };
        match std::fs::read_to_string(file) {
            Ok(body) => lookups.insert(name.to_string(), body),
            Err(e) => {
                eprintln!("error: --lookup {name}: {file}: cannot read: {e}");
                return ExitCode::from(2);
            }
        };
    }
    let script = SimScript {
        digits: inputs,
        caller,
        now,
        prompt_lengths: prompt_lengths(&cfg.prompts.dir),
        lookups,
    };
    let report = ringback_dialplan::simulate(plan, &script, cfg.operator_queue.clone());
    print!("{report}");
    ExitCode::SUCCESS
}
