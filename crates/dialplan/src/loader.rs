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
    let mut diags = Vec::new();
    let mut plans = Vec::new();
    let mut claims: HashMap<String, Vec<(PathBuf, usize, usize)>> = HashMap::new();
    for file in &files {
        let source = match read(file) {
            Ok(s) => s,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let l = load_source(file, &source, ctx);
        for (n, line, col) in l.numbers {
            claims.entry(n).or_default().push((file.clone(), line, col));
        }
        diags.extend(l.diags);
        if let Some(p) = l.plan {
            plans.push(p);
        }
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
    Ok((DialplanSet::new(plans), diags))
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
        let mut set = DialplanSet::default();
        for (i, p) in plans.into_iter().enumerate() {
            for n in &p.numbers {
                if n == "*" {
                    set.catch_all.get_or_insert(i);
                } else {
                    set.by_number.entry(n.clone()).or_insert(i);
                }
            }
            set.plans.push(Arc::new(p));
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
