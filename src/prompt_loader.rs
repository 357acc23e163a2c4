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
    /// Language prompt sets (`prompts/<tag>/*.wav`) by lower-case tag: a
    /// caller in that language hears these where they exist.
    sets: HashMap<String, HashMap<String, Arc<Prompt>>>,
    /// Where each loaded prompt came from, so a reload can reuse the decoded
    /// prompt of a file that has not changed (see [`PromptCache::reload_dir`]).
    sources: HashMap<PathBuf, (FileStamp, Arc<Prompt>)>,
}

impl PromptCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every `*.wav` (any case) directly in `dir`, keyed by file stem, and
    /// each language set: the `*.wav` in a subdirectory named by a language tag
    /// (`dir/es/`, `dir/pt-BR/`). Other subdirectories are not prompts. A bad file
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
        let mut sets = Vec::new();
        let mut paths = wav_files(dir)?;
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let p = entry.map_err(io)?.path();
            let tag = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if p.is_dir() && ringback_customers::check_language(tag).is_ok() {
                let key = ringback_dialplan::language::key(tag);
                let files = wav_files(&p)?;
                sets.extend(std::iter::repeat_n(Some(key), files.len()));
                paths.extend(files);
            }
        }
        let top = paths.len() - sets.len();
        let sets: Vec<Option<String>> = std::iter::repeat_n(None, top).chain(sets).collect();
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
        for ((p, r), set) in paths.into_iter().zip(results).zip(sets) {
            let names = match set {
                None => &mut cache.map,
                Some(key) => cache.sets.entry(key).or_default(),
            };
            match r {
                Some(Ok((_, prompt))) if names.contains_key(&prompt.name) => {
                    errors.push(PromptError::Invalid {
                        reason: format!("duplicate prompt name {:?}", prompt.name),
                        path: p,
                    });
                }
                Some(Ok((stamp, prompt))) => {
                    names.insert(prompt.name.clone(), Arc::clone(&prompt));
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

    /// The prompt called `name` as a caller in `language` hears it: from
    /// the most specific language set that has it (`pt-br`, then `pt`),
    /// else the default set.
    pub fn get_in(&self, language: Option<&str>, name: &str) -> Option<Arc<Prompt>> {
        let tags = language.map(ringback_dialplan::language::fallbacks);
        tags.iter()
            .flatten()
            .find_map(|tag| self.sets.get(tag)?.get(name))
            .or_else(|| self.map.get(name))
            .cloned()
    }

    /// The language sets loaded (lower-case tags, sorted).
    pub fn languages(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.sets.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Prompts of a language set without a default version (`(tag, name)`,
    /// sorted): dialplans cannot name them, since callers in other
    /// languages would hear nothing, so `check` points them out.
    pub fn untranslated_defaults(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self
            .sets
            .iter()
            .flat_map(|(tag, m)| m.keys().map(move |n| (tag.as_str(), n.as_str())))
            .filter(|(_, n)| !self.map.contains_key(*n))
            .collect();
        v.sort_unstable();
        v
    }

    /// Prompt names in sorted order (deterministic output for `check` and the API).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut v: Vec<&str> = self.map.keys().map(String::as_str).collect();
        v.sort_unstable();
        v.into_iter()
    }
}

/// The `*.wav` files (any case) directly in `dir`, sorted.
fn wav_files(dir: &Path) -> Result<Vec<PathBuf>, PromptError> {
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
    Ok(paths)
}

#[cfg(test)]
mod tests;
