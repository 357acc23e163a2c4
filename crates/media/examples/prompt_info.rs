//! Decodes every prompt of a directory the way the server does and prints what it
//! found: `cargo run -p ringback-media --example prompt_info -- prompts/`.
//! Handy to check a new recording converts cleanly before deploying it.
//!
//! An example is a small shell around the crate: it reads the files itself (the
//! server's `src/prompt_loader.rs` does the same, with a reload cache and threads) and
//! hands the bytes to [`prompt::decode_wav`].
#![allow(clippy::disallowed_methods)]

use ringback_media::{goertzel, prompt, Codec};
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "prompts".into()));
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{}: {e}", dir.display());
            std::process::exit(1);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
                && p.is_file()
        })
        .collect();
    paths.sort();
    let mut failed = false;
    for path in &paths {
        let decoded = std::fs::read(path)
            .map_err(|error| prompt::PromptError::Io {
                path: path.clone(),
                error,
            })
            .and_then(|bytes| prompt::decode_wav(path, &bytes));
        let p = match decoded {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
                continue;
            }
        };
        let pcm = p.to_pcm();
        let rms = goertzel::mean_power(&pcm).sqrt();
        let dbfs = 20.0 * (rms.max(1.0) / 32768.0).log10();
        println!(
            "{:<24} {:>7.3} s {:>5} frames  rms {dbfs:>6.1} dBFS",
            p.name,
            p.duration().as_secs_f64(),
            p.frames(Codec::Pcmu)
        );
    }
    if failed {
        std::process::exit(1);
    }
}
