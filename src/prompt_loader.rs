//! Prompt files: the shell half of [`ringback_media::prompt`].
//!
//! The media crate decodes WAV bytes it is handed and never touches a file,
//! a thread or the clock. This module does those parts: it lists the prompt
//! directory, stats and reads the files, decodes the changed ones in
//! parallel (one thread per core) and keeps the decoded prompts by file
//! stamp, so a reload only decodes what changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ringback_media::prompt::{self, Prompt, PromptError};

/// Loads a WAV file as a prompt named after the file stem (see
/// [`prompt::decode_wav`] for the formats). The file is stat'ed first so an
/// oversized one is refused without being read.
pub fn load_wav(path: &Path) -> Result<Prompt, PromptError> {
    let io = |error| PromptError::Io {
        path: path.to_path_buf(),
        error,
    };
    prompt::prompt_name(path)?;
    prompt::check_size(path, std::fs::metadata(path).map_err(io)?.len())?;
    let bytes = std::fs::read(path).map_err(io)?;
    prompt::decode_wav(path, &bytes)
}

/// Runs `f` over `items` on one thread per core (at most one per item) and
/// returns the results in the order of `items`. Work-stealing: items differ
/// a lot in cost (a jingle against an hour of hold music), so a static split
/// would leave cores idle. With one core or one item, runs on the caller's
/// thread. A panic in `f` is propagated.
pub(crate) fn parallel_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let next = match queue.lock() {
                            Ok(mut q) => q.next(),
                            Err(p) => p.into_inner().next(),
                        };
                        let Some((i, item)) = next else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// What identifies one version of a prompt file without reading it: size,
/// modification time and (on Unix) inode and status-change time. Taken
/// *before* the file is read, so a write that lands after the read changes the
/// stamp and the next reload decodes the file again. A rename over the file
/// (what editors and `cp` to a temp name + `mv` do) changes the inode; `touch`
/// or an in-place write changes the mtime and ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    mtime: Option<SystemTime>,
    #[cfg(unix)]
    ino: u64,
    #[cfg(unix)]
    ctime: (i64, i64),
}

/// One file's load: its stamp and prompt, or why it failed.
type Loaded = Result<(FileStamp, Arc<Prompt>), PromptError>;

/// Files changed this recently before a load are not reused by the next reload.
const RACY_WINDOW: Duration = Duration::from_secs(2);

impl FileStamp {
    /// Whether the file changed (mtime or, on Unix, ctime) less than `window`
    /// before `now`, or its times are unknown or in the future.
    fn is_recent(&self, window: Duration, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(std::time::UNIX_EPOCH) else {
            return true;
        };
        let Some(mtime) = self
            .mtime
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        else {
            return true;
        };
        #[cfg(unix)]
        let changed = mtime.max(Duration::new(
            self.ctime.0.max(0) as u64,
            self.ctime.1.clamp(0, 999_999_999) as u32,
        ));
        #[cfg(not(unix))]
        let changed = mtime;
        changed + window > now
    }

    /// The stamp of `path` now.
    pub fn of(path: &Path) -> std::io::Result<FileStamp> {
        let m = std::fs::metadata(path)?;
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Ok(FileStamp {
            len: m.len(),
            mtime: m.modified().ok(),
            #[cfg(unix)]
            ino: m.ino(),
            #[cfg(unix)]
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// All prompts of a directory, loaded once at start-up (and on reload) and shared by
/// every call through `Arc`.
#[derive(Debug, Clone, Default)]
pub struct PromptCache {
    map: HashMap<String, Arc<Prompt>>,
    /// Where each loaded prompt came from, so a reload can reuse the decoded
    /// prompt of a file that has not changed (see [`PromptCache::reload_dir`]).
    sources: HashMap<PathBuf, (FileStamp, Arc<Prompt>)>,
}

impl PromptCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every `*.wav` (any case) directly in `dir`, keyed by file stem. A bad file
    /// does not stop the others: its error is returned in the list so `check` can report
    /// all of them at once. Only an unreadable directory is a hard error. Files are
    /// decoded in parallel, one thread per core.
    pub fn load_dir(dir: &Path) -> Result<(PromptCache, Vec<PromptError>), PromptError> {
        Self::reload_dir(dir, &PromptCache::new())
    }

    /// Like [`load_dir`](Self::load_dir), but a file whose [`FileStamp`] (size, mtime,
    /// inode, ctime) is the same as when `previous` loaded it is not read again: its
    /// decoded prompt is shared. Changed and new files are decoded; removed files are
    /// dropped. Files that failed before are tried again.
    ///
    /// File times are only as fine as the kernel's clock tick (a few ms), so a file
    /// changed within 2 s before it was loaded is decoded again at the next reload
    /// rather than trusted (git's "racily clean" rule): a second same-size write within
    /// one tick of the load cannot be missed.
    pub fn reload_dir(
        dir: &Path,
        previous: &PromptCache,
    ) -> Result<(PromptCache, Vec<PromptError>), PromptError> {
        Self::reload_dir_racy(dir, previous, RACY_WINDOW).map(|(cache, errors, _)| (cache, errors))
    }

    /// [`reload_dir`](Self::reload_dir) with the racy window as a parameter;
    /// also returns how many files were decoded (the others were reused).
    fn reload_dir_racy(
        dir: &Path,
        previous: &PromptCache,
        racy: Duration,
    ) -> Result<(PromptCache, Vec<PromptError>, usize), PromptError> {
        let io = |error| PromptError::Io {
            path: dir.to_path_buf(),
            error,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let p = entry.map_err(io)?.path();
            let is_wav = p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
            if is_wav && p.is_file() {
                paths.push(p);
            }
        }
        paths.sort();
        // Stamp first (before any read), then reuse or decode.
        let mut results: Vec<Option<Loaded>> = paths
            .iter()
            .map(|p| match FileStamp::of(p) {
                Err(error) => Some(Err(PromptError::Io {
                    path: p.clone(),
                    error,
                })),
                Ok(stamp) => previous
                    .sources
                    .get(p)
                    .filter(|(s, _)| *s == stamp)
                    .map(|(s, prompt)| Ok((*s, Arc::clone(prompt)))),
            })
            .collect();
        let todo: Vec<usize> = (0..paths.len()).filter(|&i| results[i].is_none()).collect();
        let decoded = todo.len();
        let load = |i: usize| -> Loaded {
            let p = &paths[i];
            let stamp = FileStamp::of(p).map_err(|error| PromptError::Io {
                path: p.clone(),
                error,
            })?;
            load_wav(p).map(|prompt| (stamp, Arc::new(prompt)))
        };
        for (i, r) in todo.iter().zip(parallel_map(todo.clone(), load)) {
            results[*i] = Some(r);
        }
        let mut cache = PromptCache::default();
        let mut errors = Vec::new();
        let now = SystemTime::now();
        for (p, r) in paths.into_iter().zip(results) {
            match r {
                Some(Ok((_, prompt))) if cache.map.contains_key(&prompt.name) => {
                    errors.push(PromptError::Invalid {
                        reason: format!("duplicate prompt name {:?}", prompt.name),
                        path: p,
                    });
                }
                Some(Ok((stamp, prompt))) => {
                    cache.map.insert(prompt.name.clone(), Arc::clone(&prompt));
                    if !stamp.is_recent(racy, now) {
                        cache.sources.insert(p, (stamp, prompt));
                    }
                }
                Some(Err(e)) => errors.push(e),
                None => unreachable!("every file is reused or decoded"),
            }
        }
        Ok((cache, errors, decoded))
    }

    /// The prompt called `name`, shared.
    pub fn get(&self, name: &str) -> Option<Arc<Prompt>> {
        self.map.get(name).cloned()
    }

    /// Prompt names in sorted order (deterministic output for `check` and the API).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut v: Vec<&str> = self.map.keys().map(String::as_str).collect();
        v.sort_unstable();
        v.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringback_media::goertzel;
    use tempfile::TempDir;

    fn sine(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<f64> {
        let n = (rate as f64 * secs) as usize;
        (0..n)
            .map(|i| amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin())
            .collect()
    }

    /// `mono` (−1..1) as a 16-bit mono PCM WAV file.
    fn wav_bytes(mono: &[f64], rate: u32) -> Vec<u8> {
        let data_len = (mono.len() * 2) as u32;
        let mut v = Vec::with_capacity(44 + mono.len() * 2);
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes()); // PCM
        v.extend_from_slice(&1u16.to_le_bytes()); // mono
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * 2).to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes()); // block align
        v.extend_from_slice(&16u16.to_le_bytes()); // bits
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        for &x in mono {
            v.extend_from_slice(&((x * 32767.0).round() as i16).to_le_bytes());
        }
        v
    }

    fn write_wav(path: &Path, mono: &[f64], rate: u32) {
        std::fs::write(path, wav_bytes(mono, rate)).unwrap();
    }

    #[test]
    fn load_wav_reads_and_decodes_and_names_the_file_in_errors() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("welcome.wav");
        write_wav(&path, &sine(440.0, 22050, 0.3, 0.5), 22050);
        let p = load_wav(&path).unwrap();
        assert_eq!(p.name, "welcome");
        assert!((p.duration().as_secs_f64() - 0.3).abs() < 0.02);

        let missing = dir.path().join("missing.wav");
        let e = load_wav(&missing).unwrap_err();
        assert!(matches!(e, PromptError::Io { .. }), "{e}");
        assert_eq!(e.path(), missing);
        assert!(e
            .to_string()
            .starts_with(&format!("{}: ", missing.display())));

        let garbage = dir.path().join("garbage.wav");
        std::fs::write(&garbage, b"this is not a wav file at all, just text").unwrap();
        let e = load_wav(&garbage).unwrap_err();
        assert!(
            matches!(
                e,
                PromptError::Invalid { .. } | PromptError::Unsupported { .. }
            ),
            "{e}"
        );
        assert_eq!(e.path(), garbage);
    }

    #[test]
    fn cache_loads_directory_and_collects_errors() {
        let dir = TempDir::new().unwrap();
        let dir = dir.path();
        write_wav(
            &dir.join("welcome.wav"),
            &sine(440.0, 22050, 0.3, 0.5),
            22050,
        );
        write_wav(&dir.join("menu.WAV"), &sine(440.0, 8000, 0.2, 0.5), 8000);
        std::fs::write(dir.join("broken.wav"), b"RIFF....WAVE").unwrap();
        std::fs::write(dir.join("readme.txt"), b"not a prompt").unwrap();
        let (cache, errors) = PromptCache::load_dir(dir).unwrap();
        assert_eq!(cache.names().collect::<Vec<_>>(), vec!["menu", "welcome"]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].path().ends_with("broken.wav"));
        let w = cache.get("welcome").unwrap();
        assert!((w.duration().as_secs_f64() - 0.3).abs() < 0.02);
        assert!(cache.get("nope").is_none());
        // Sharing: the same Arc, no copy.
        assert!(Arc::ptr_eq(
            &cache.get("menu").unwrap(),
            &cache.get("menu").unwrap()
        ));
        assert!(matches!(
            PromptCache::load_dir(&dir.join("nope")),
            Err(PromptError::Io { .. })
        ));
    }

    #[test]
    fn duplicate_names_are_reported_once_the_first_file_wins() {
        let dir = TempDir::new().unwrap();
        write_wav(
            &dir.path().join("menu.WAV"),
            &sine(440.0, 8000, 0.2, 0.5),
            8000,
        );
        write_wav(
            &dir.path().join("menu.wav"),
            &sine(660.0, 8000, 0.2, 0.5),
            8000,
        );
        if std::fs::read_dir(dir.path()).unwrap().count() < 2 {
            return; // a case-insensitive file system: one file, no duplicate
        }
        let (cache, errors) = PromptCache::load_dir(dir.path()).unwrap();
        assert_eq!(cache.names().collect::<Vec<_>>(), ["menu"]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].path().ends_with("menu.wav"));
        assert!(
            errors[0]
                .to_string()
                .contains("duplicate prompt name \"menu\""),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn parallel_map_keeps_order_and_runs_everything() {
        let items: Vec<u64> = (0..100).collect();
        let out = parallel_map(items, |x| {
            // Uneven work, so workers finish out of order.
            std::thread::sleep(Duration::from_micros((x * 37) % 500));
            x * 2
        });
        assert_eq!(out, (0..100).map(|x| x * 2).collect::<Vec<_>>());
        assert!(parallel_map(Vec::<u8>::new(), |x| x).is_empty());
        assert_eq!(parallel_map(vec![7], |x| x + 1), [8]);
    }

    #[test]
    fn file_stamps_are_recent_within_the_window_or_when_unknown() {
        let epoch = std::time::UNIX_EPOCH;
        let at = |secs| epoch + Duration::from_secs(secs);
        let stamp = FileStamp {
            len: 1,
            mtime: Some(at(1000)),
            #[cfg(unix)]
            ino: 1,
            #[cfg(unix)]
            ctime: (1000, 0),
        };
        assert!(stamp.is_recent(Duration::from_secs(2), at(1001)));
        assert!(!stamp.is_recent(Duration::from_secs(2), at(1002)));
        assert!(!stamp.is_recent(Duration::ZERO, at(1000)));
        assert!(stamp.is_recent(Duration::from_secs(2), at(999)), "future");
        #[cfg(unix)]
        {
            let touched = FileStamp {
                ctime: (2000, 0),
                ..stamp
            };
            assert!(touched.is_recent(Duration::from_secs(2), at(2001)), "ctime");
        }
        let unknown = FileStamp {
            mtime: None,
            ..stamp
        };
        assert!(unknown.is_recent(Duration::ZERO, at(5000)));
    }

    /// Sets a file's mtime `secs_ago` seconds into the past (ctime still moves).
    fn age(path: &Path, secs_ago: u64) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
            .unwrap();
    }

    fn two_prompts() -> TempDir {
        let dir = TempDir::new().unwrap();
        for (name, freq) in [("a", 440.0), ("b", 660.0)] {
            let p = dir.path().join(format!("{name}.wav"));
            write_wav(&p, &sine(freq, 22050, 0.3, 0.5), 22050);
            age(&p, 3600);
        }
        dir
    }

    #[test]
    fn reload_reuses_unchanged_prompts() {
        let dir = two_prompts();
        let dir = dir.path();
        let (first, errors, decoded) =
            PromptCache::reload_dir_racy(dir, &PromptCache::new(), Duration::ZERO).unwrap();
        assert!(errors.is_empty());
        assert_eq!(decoded, 2);
        let (second, errors, decoded) =
            PromptCache::reload_dir_racy(dir, &first, Duration::ZERO).unwrap();
        assert!(errors.is_empty());
        assert_eq!(decoded, 0, "nothing changed, nothing decoded");
        assert_eq!(second.names().collect::<Vec<_>>(), vec!["a", "b"]);
        for n in ["a", "b"] {
            assert!(Arc::ptr_eq(&first.get(n).unwrap(), &second.get(n).unwrap()));
        }
    }

    #[test]
    fn reload_picks_up_a_changed_prompt() {
        use std::io::Write;
        let dir = two_prompts();
        let dir = dir.path();
        let (first, _, _) =
            PromptCache::reload_dir_racy(dir, &PromptCache::new(), Duration::ZERO).unwrap();
        // Same size, same inode, new content and mtime (an in-place rewrite).
        let a = dir.join("a.wav");
        let len = std::fs::metadata(&a).unwrap().len();
        let mut f = std::fs::File::options().write(true).open(&a).unwrap();
        f.write_all(&wav_bytes(&sine(1000.0, 22050, 0.3, 0.5), 22050))
            .unwrap();
        drop(f);
        assert_eq!(std::fs::metadata(&a).unwrap().len(), len, "test premise");
        age(&a, 60);
        let (second, _, decoded) =
            PromptCache::reload_dir_racy(dir, &first, Duration::ZERO).unwrap();
        assert_eq!(decoded, 1);
        let new_a = second.get("a").unwrap().to_pcm();
        assert!(goertzel::tone_power(&new_a, 1000.0) > 0.9 * goertzel::mean_power(&new_a));
        assert!(!Arc::ptr_eq(
            &first.get("a").unwrap(),
            &second.get("a").unwrap()
        ));
        assert!(Arc::ptr_eq(
            &first.get("b").unwrap(),
            &second.get("b").unwrap()
        ));
    }

    #[test]
    fn reload_picks_up_added_and_removed_prompts() {
        let dir = two_prompts();
        let dir = dir.path();
        let (first, _, _) =
            PromptCache::reload_dir_racy(dir, &PromptCache::new(), Duration::ZERO).unwrap();
        let c = dir.join("c.wav");
        write_wav(&c, &sine(880.0, 8000, 0.2, 0.5), 8000);
        std::fs::remove_file(dir.join("a.wav")).unwrap();
        let (second, errors, decoded) =
            PromptCache::reload_dir_racy(dir, &first, Duration::ZERO).unwrap();
        assert!(errors.is_empty());
        assert_eq!(second.names().collect::<Vec<_>>(), vec!["b", "c"]);
        assert_eq!(decoded, 1);
        assert!(Arc::ptr_eq(
            &first.get("b").unwrap(),
            &second.get("b").unwrap()
        ));
        // A file that was broken is tried again, and counts once it is fixed.
        std::fs::write(dir.join("d.wav"), b"RIFF....WAVE").unwrap();
        let (third, errors, _) =
            PromptCache::reload_dir_racy(dir, &second, Duration::ZERO).unwrap();
        assert_eq!(errors.len(), 1);
        assert!(third.get("d").is_none());
        write_wav(&dir.join("d.wav"), &sine(500.0, 8000, 0.2, 0.5), 8000);
        let (fourth, errors, _) =
            PromptCache::reload_dir_racy(dir, &third, Duration::ZERO).unwrap();
        assert!(errors.is_empty());
        assert!(fourth.get("d").is_some());
    }

    #[test]
    fn recently_changed_prompts_are_decoded_again() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("fresh.wav");
        write_wav(&p, &sine(440.0, 8000, 0.2, 0.5), 8000);
        // Just written: its ctime is now, so the next reload does not trust the stamp.
        let (first, _) = PromptCache::reload_dir(dir.path(), &PromptCache::new()).unwrap();
        let (second, _, decoded) =
            PromptCache::reload_dir_racy(dir.path(), &first, RACY_WINDOW).unwrap();
        assert_eq!(decoded, 1);
        assert!(!Arc::ptr_eq(
            &first.get("fresh").unwrap(),
            &second.get("fresh").unwrap()
        ));
    }

    #[test]
    fn shipped_prompts_all_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let (cache, errors, decoded) =
            PromptCache::reload_dir_racy(&dir, &PromptCache::new(), RACY_WINDOW).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let n = cache.names().count();
        assert!(n >= 40, "{n}");
        assert_eq!(decoded, n);
    }
}
