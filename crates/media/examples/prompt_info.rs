//! Loads a prompt directory the way the server does and prints what it found:
//! `cargo run -p ringback-media --example prompt_info -- prompts/`.
//! Handy to check a new recording converts cleanly before deploying it.

use ringback_media::{goertzel, prompt::PromptCache, Codec};
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "prompts".into()));
    let (cache, errors) = match PromptCache::load_dir(&dir) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    for name in cache.names() {
        let Some(p) = cache.get(name) else { continue };
        let pcm = p.to_pcm();
        let rms = goertzel::mean_power(&pcm).sqrt();
        let dbfs = 20.0 * (rms.max(1.0) / 32768.0).log10();
        println!(
            "{name:<24} {:>7.3} s {:>5} frames  rms {dbfs:>6.1} dBFS",
            p.duration().as_secs_f64(),
            p.frames(Codec::Pcmu)
        );
    }
    for e in &errors {
        eprintln!("error: {e}");
    }
    if !errors.is_empty() {
        std::process::exit(1);
    }
}
