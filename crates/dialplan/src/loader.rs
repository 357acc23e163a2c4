//! Loading dialplan files and directories into checked, shareable plans.
//!
//! This is the only module that touches the file system: the interpreter gets
//! a finished [`Dialplan`] and never reads anything itself. Loading is
//! all-or-nothing per directory so hot reload can keep serving the previous
//! [`DialplanSet`] when any file is broken.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::check::check;
use crate::diag::{sort_diagnostics, Diagnostic, Severity, Sink};
use crate::model::{CheckContext, Dialplan};
use crate::parse::parse;

/// Diagnostics of a failed load: every error (and warning) found, sorted by
/// file and position. At least one entry is an error.
pub type Diagnostics = Vec<Diagnostic>;

/// Short, stable hash of a file's contents (64-bit FNV-1a, 12 hex digits).
///
/// Not cryptographic: it only has to tell versions of the same plan apart in
/// logs, CDRs and the `dialplan versions` table, without a hashing crate.
pub fn content_version(source: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")[..12].to_string()
}

struct Loaded {
    plan: Option<Dialplan>,
    diags: Vec<Diagnostic>,
    /// (number, line, col) of every entry in `numbers`, for cross-file checks.
    numbers: Vec<(String, usize, usize)>,
}

fn load_source(file: &Path, source: &str, ctx: &CheckContext) -> Loaded {
    let mut sink = Sink::new(file, source);
    let mut numbers = Vec::new();
    let plan = match parse(&mut sink) {
        None => None,
        Some(draft) => {
            for n in &draft.numbers {
                let (line, col) = sink.position(n.span().start);
                numbers.push((n.get_ref().clone(), line, col));
            }
            check(&mut sink, draft, ctx, file, content_version(source))
        }
    };
    let mut diags = sink.diags;
    sort_diagnostics(&mut diags);
    Loaded {
        plan,
        diags,
        numbers,
    }
}

fn split(
    plan: Option<Dialplan>,
    diags: Vec<Diagnostic>,
) -> Result<(Dialplan, Vec<Diagnostic>), Diagnostics> {
    match plan {
        Some(p) if !diags.iter().any(Diagnostic::is_error) => Ok((p, diags)),
        _ => Err(diags),
    }
}

/// Loads one dialplan from text; `file` is only used for messages and
/// [`Dialplan::file`]. Pure (no I/O), for tests, the API and uploads.
///
/// `Ok` carries the plan and its warnings; `Err` carries every diagnostic
/// (errors and warnings, sorted).
pub fn load_str(
    file: &Path,
    source: &str,
    ctx: &CheckContext,
) -> Result<(Dialplan, Vec<Diagnostic>), Diagnostics> {
    let l = load_source(file, source, ctx);
    split(l.plan, l.diags)
}

fn read(path: &Path) -> Result<String, Diagnostic> {
    std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::file_error(path, format!("cannot read dialplan: {e}")))
}

/// Reads and checks one dialplan file (see [`load_str`]).
pub fn load_file(
    path: &Path,
    ctx: &CheckContext,
) -> Result<(Dialplan, Vec<Diagnostic>), Diagnostics> {
    let source = read(path).map_err(|d| vec![d])?;
    load_str(path, &source, ctx)
}

/// Loads every `*.toml` file of a directory (not recursive) into a
/// [`DialplanSet`].
///
/// All errors of all files are collected (not just the first file's), plus
/// cross-file errors: a number claimed by two files is reported at both
/// places. `Ok` carries the set and all warnings.
pub fn load_dir(
    dir: &Path,
    ctx: &CheckContext,
) -> Result<(DialplanSet, Vec<Diagnostic>), Diagnostics> {
    load_dir_cached(dir, ctx, &mut LoadCache::default())
}

/// What one file gave the last time it was loaded.
#[derive(Debug, Clone)]
struct CachedFile {
    source: String,
    plan: Option<Arc<Dialplan>>,
    diags: Vec<Diagnostic>,
    numbers: Vec<(String, usize, usize)>,
}

/// Results of earlier loads, for [`load_dir_cached`]: a file whose text and
/// check context are unchanged is not parsed and checked again, and its
/// [`Dialplan`] is shared (`Arc`) with the previous set.
#[derive(Debug, Clone, Default)]
pub struct LoadCache {
    ctx: Option<CheckContext>,
    files: HashMap<PathBuf, CachedFile>,
    checked: usize,
}

impl LoadCache {
    /// Files the last load parsed and checked (the rest were reused).
    pub fn checked(&self) -> usize {
        self.checked
    }
}

/// [`load_dir`] with a cache: every file is read, but one whose text is the
/// same as at the previous load (with the same [`CheckContext`]) reuses that
/// load's result, plan and diagnostics, instead of being parsed and checked
/// again. Changed and new files are parsed and checked in parallel (one
/// thread per core). Cross-file checks always run over all files, so the
/// result is exactly what [`load_dir`] would return. The cache is updated
/// whether or not the load succeeds.
pub fn load_dir_cached(
    dir: &Path,
    ctx: &CheckContext,
    cache: &mut LoadCache,
) -> Result<(DialplanSet, Vec<Diagnostic>), Diagnostics> {
    if cache.ctx.as_ref() != Some(ctx) {
        cache.files.clear();
        cache.ctx = Some(ctx.clone());
    }
    let mut previous = std::mem::take(&mut cache.files);
    cache.checked = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![Diagnostic::file_error(
            dir,
            format!("cannot read dialplan directory: {e}"),
        )]
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(vec![Diagnostic::file_error(
            dir,
            "no dialplans: the directory has no *.toml files",
        )]);
    }
    // Read everything; keep what is unchanged, collect what must be checked.
    let mut slots: Vec<Result<Option<CachedFile>, Diagnostic>> = Vec::with_capacity(files.len());
    let mut todo: Vec<(usize, String)> = Vec::new();
    for (i, file) in files.iter().enumerate() {
        match read(file) {
            Err(d) => slots.push(Err(d)),
            Ok(source) => match previous.remove(file) {
                Some(c) if c.source == source => slots.push(Ok(Some(c))),
                _ => {
                    slots.push(Ok(None));
                    todo.push((i, source));
                }
            },
        }
    }
    cache.checked = todo.len();
    let check_one = |i: usize, source: String| {
        let file = &files[i];
        let l = load_source(file, &source, ctx);
        CachedFile {
            source,
            plan: l.plan.map(Arc::new),
            diags: l.diags,
            numbers: l.numbers,
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(todo.len());
    if threads <= 1 {
        for (i, source) in todo {
            slots[i] = Ok(Some(check_one(i, source)));
        }
    } else {
        let queue = std::sync::Mutex::new(todo.into_iter());
        let done: Vec<(usize, CachedFile)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let next = match queue.lock() {
                                Ok(mut q) => q.next(),
                                Err(p) => p.into_inner().next(),
                            };
                            let Some((i, source)) = next else { break };
                            out.push((i, check_one(i, source)));
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
        for (i, c) in done {
            slots[i] = Ok(Some(c));
        }
    }
    let mut diags = Vec::new();
    let mut plans = Vec::new();
    let mut claims: HashMap<String, Vec<(PathBuf, usize, usize)>> = HashMap::new();
    for (file, slot) in files.iter().zip(slots) {
        let c = match slot {
            Err(d) => {
                diags.push(d);
                continue;
            }
            Ok(None) => continue, // not reached: every read file was checked or reused
            Ok(Some(c)) => c,
        };
        for (n, line, col) in &c.numbers {
            claims
                .entry(n.clone())
                .or_default()
                .push((file.clone(), *line, *col));
        }
        diags.extend(c.diags.iter().cloned());
        if let Some(p) = &c.plan {
            plans.push(Arc::clone(p));
        }
        cache.files.insert(file.clone(), c);
    }
    for (number, places) in &claims {
        if places.len() < 2 {
            continue;
        }
        let what = if number == "*" {
            "the catch-all number \"*\"".to_string()
        } else {
            format!("number `{number}`")
        };
        for (i, (file, line, col)) in places.iter().enumerate() {
            let others: Vec<String> = places
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (f, l, c))| format!("{}:{l}:{c}", f.display()))
                .collect();
            diags.push(Diagnostic {
                file: file.clone(),
                line: *line,
                col: *col,
                message: format!(
                    "{what} is claimed by more than one dialplan (also at {}); each number may be answered by one file only",
                    others.join(", ")
                ),
                severity: Severity::Error,
            });
        }
    }
    sort_diagnostics(&mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    Ok((DialplanSet::from_shared(plans), diags))
}

/// All dialplans of a directory, indexed by the numbers they answer.
///
/// Plans are behind `Arc` so a call can keep the snapshot it started with
/// while hot reload swaps the whole set.
#[derive(Debug, Clone, Default)]
pub struct DialplanSet {
    plans: Vec<Arc<Dialplan>>,
    by_number: HashMap<String, usize>,
    catch_all: Option<usize>,
}

impl DialplanSet {
    /// Builds a set from already-checked plans. When two plans claim the same
    /// number the first wins (`load_dir` rejects that case before).
    pub fn new(plans: Vec<Dialplan>) -> Self {
        Self::from_shared(plans.into_iter().map(Arc::new).collect())
    }

    /// Like [`new`](Self::new), with plans that may be shared with another
    /// set (a reload reuses the unchanged ones).
    pub fn from_shared(plans: Vec<Arc<Dialplan>>) -> Self {
        let mut set = DialplanSet::default();
        for (i, p) in plans.into_iter().enumerate() {
            for n in &p.numbers {
                if n == "*" {
                    set.catch_all.get_or_insert(i);
                } else {
                    set.by_number.entry(n.clone()).or_insert(i);
                }
            }
            set.plans.push(p);
        }
        set
    }

    /// The plan for a dialed Request-URI user: an exact match, else the
    /// catch-all (`"*"`) plan, else `None` (the server answers 404).
    pub fn for_number(&self, user: &str) -> Option<Arc<Dialplan>> {
        self.by_number
            .get(user)
            .or(self.catch_all.as_ref())
            .and_then(|&i| self.plans.get(i))
            .cloned()
    }

    /// Every plan, in file-name order.
    pub fn plans(&self) -> impl Iterator<Item = &Arc<Dialplan>> {
        self.plans.iter()
    }

    /// Number of plans.
    pub fn len(&self) -> usize {
        self.plans.len()
    }

    /// True when the set has no plans (only for `Default`; `load_dir` never
    /// returns an empty set).
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }
}
