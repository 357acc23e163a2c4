//! Turning dialplan texts into checked, shareable plans.
//!
//! Nothing here touches the file system, spawns a thread or reads the clock:
//! the server's `plan_loader` (the shell) lists and reads the files and hands
//! their texts to [`load_str`] / [`load_sources_cached`], and may run the
//! per-file checks ([`CheckJob`]) on its own threads. Loading is
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

/// The diagnostic for a dialplan file the caller could not read.
pub fn read_error(path: &Path, error: &std::io::Error) -> Diagnostic {
    Diagnostic::file_error(path, format!("cannot read dialplan: {error}"))
}

/// A dialplan file as the caller read it: its path and text, or why it
/// could not be read. The crate never reads files itself; the server's
/// `plan_loader` lists the directory and reads them.
#[derive(Debug)]
pub struct SourceFile {
    /// The file (for messages, [`Dialplan::file`] and the cache).
    pub path: PathBuf,
    /// Its contents, or the error reading it.
    pub text: std::io::Result<String>,
}

impl SourceFile {
    /// A file read successfully.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        SourceFile {
            path: path.into(),
            text: Ok(text.into()),
        }
    }
}

/// Loads the `*.toml` files of a directory, as read by the caller, into a
/// [`DialplanSet`]; `dir` is only used for messages. Pure (no I/O).
///
/// All errors of all files are collected (not just the first file's), plus
/// cross-file errors: a number claimed by two files is reported at both
/// places. A file that could not be read is an error; no file at all is an
/// error. `Ok` carries the set and all warnings.
pub fn load_sources(
    dir: &Path,
    files: Vec<SourceFile>,
    ctx: &CheckContext,
) -> Result<(DialplanSet, Vec<Diagnostic>), Diagnostics> {
    load_sources_cached(dir, files, ctx, &mut LoadCache::default(), check_in_order)
}

/// What one file gave the last time it was loaded.
#[derive(Debug, Clone)]
struct CachedFile {
    source: String,
    plan: Option<Arc<Dialplan>>,
    diags: Vec<Diagnostic>,
    numbers: Vec<(String, usize, usize)>,
}

/// Results of earlier loads, for [`load_sources_cached`]: a file whose text
/// and check context are unchanged is not parsed and checked again, and its
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

/// One changed or new file that [`load_sources_cached`] needs parsed and
/// checked. The caller decides where [`run`](Self::run) happens: in order
/// ([`check_in_order`]) or on worker threads (the server uses one per core).
#[derive(Debug)]
pub struct CheckJob<'a> {
    slot: usize,
    file: &'a Path,
    source: &'a str,
    ctx: &'a CheckContext,
}

impl CheckJob<'_> {
    /// The file this job checks.
    pub fn file(&self) -> &Path {
        self.file
    }

    /// Parses and checks the file (pure, CPU only).
    pub fn run(self) -> CheckedFile {
        CheckedFile {
            slot: self.slot,
            loaded: load_source(self.file, self.source, self.ctx),
        }
    }
}

/// The result of one [`CheckJob`], to be handed back to
/// [`load_sources_cached`].
pub struct CheckedFile {
    slot: usize,
    loaded: Loaded,
}

impl std::fmt::Debug for CheckedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedFile")
            .field("slot", &self.slot)
            .field("plan", &self.loaded.plan.as_ref().map(|p| &p.name))
            .field("diags", &self.loaded.diags.len())
            .finish()
    }
}

/// Runs every job on the calling thread, in order.
pub fn check_in_order(jobs: Vec<CheckJob<'_>>) -> Vec<CheckedFile> {
    jobs.into_iter().map(CheckJob::run).collect()
}

/// [`load_sources`] with a cache: a file whose text is the same as at the
/// previous load (with the same [`CheckContext`]) reuses that load's
/// result, plan and diagnostics, instead of being parsed and checked again.
/// Changed and new files become [`CheckJob`]s handed to `check_all`, which
/// returns their results in any order (the server runs them in parallel). A
/// job `check_all` drops is run here. Cross-file checks always run over all
/// files, so the result is exactly what [`load_sources`] would return. The
/// cache is updated whether or not the load succeeds.
pub fn load_sources_cached<F>(
    dir: &Path,
    mut files: Vec<SourceFile>,
    ctx: &CheckContext,
    cache: &mut LoadCache,
    check_all: F,
) -> Result<(DialplanSet, Vec<Diagnostic>), Diagnostics>
where
    F: FnOnce(Vec<CheckJob<'_>>) -> Vec<CheckedFile>,
{
    if cache.ctx.as_ref() != Some(ctx) {
        cache.files.clear();
        cache.ctx = Some(ctx.clone());
    }
    let mut previous = std::mem::take(&mut cache.files);
    cache.checked = 0;
    if files.is_empty() {
        return Err(vec![Diagnostic::file_error(
            dir,
            "no dialplans: the directory has no *.toml files",
        )]);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // Keep what is unchanged, collect what must be checked.
    let mut slots: Vec<Result<Option<CachedFile>, Diagnostic>> = Vec::with_capacity(files.len());
    let mut sources: Vec<Option<String>> = Vec::with_capacity(files.len());
    for file in &mut files {
        let text = std::mem::replace(&mut file.text, Ok(String::new()));
        match text {
            Err(e) => {
                slots.push(Err(read_error(&file.path, &e)));
                sources.push(None);
            }
            Ok(source) => match previous.remove(&file.path) {
                Some(c) if c.source == source => {
                    slots.push(Ok(Some(c)));
                    sources.push(None);
                }
                _ => {
                    slots.push(Ok(None));
                    sources.push(Some(source));
                }
            },
        }
    }
    let jobs: Vec<CheckJob<'_>> = sources
        .iter()
        .enumerate()
        .filter_map(|(slot, s)| {
            Some(CheckJob {
                slot,
                file: &files[slot].path,
                source: s.as_deref()?,
                ctx,
            })
        })
        .collect();
    cache.checked = jobs.len();
    let mut checked: Vec<Option<Loaded>> = (0..files.len()).map(|_| None).collect();
    for c in check_all(jobs) {
        if let Some(place) = checked.get_mut(c.slot) {
            *place = Some(c.loaded);
        }
    }
    for (slot, source) in sources.into_iter().enumerate() {
        let Some(source) = source else { continue };
        let file = &files[slot].path;
        let l = checked[slot]
            .take()
            .unwrap_or_else(|| load_source(file, &source, ctx));
        slots[slot] = Ok(Some(CachedFile {
            source,
            plan: l.plan.map(Arc::new),
            diags: l.diags,
            numbers: l.numbers,
        }));
    }
    let mut diags = Vec::new();
    let mut plans = Vec::new();
    let mut claims: HashMap<String, Vec<(PathBuf, usize, usize)>> = HashMap::new();
    for (file, slot) in files.iter().map(|f| &f.path).zip(slots) {
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
    /// number the first wins (`load_sources` rejects that case before).
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

    /// True when the set has no plans (only for `Default`; `load_sources` never
    /// returns an empty set).
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }
}
