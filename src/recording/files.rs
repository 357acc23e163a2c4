//! The recordings directory: where a new recording's file goes, opening
//! it, repairing the header of a file a killed process left behind, and
//! deleting old files. Blocking file-system calls: run them on the
//! blocking pool, never on the media path.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};

/// Bytes before the samples in the files ringback writes (RIFF, `fmt `
/// with a 16-byte PCM format, `data`).
pub const HEADER_BYTES: u64 = 44;

/// Bytes of one stereo 16-bit sample frame.
const BLOCK: u64 = 4;

/// Where a recording of `call_id` started at `at` goes, relative to the
/// recordings directory: one directory per day, the time, the call id
/// (characters other than letters, digits, `.`, `_` and `-` replaced) and
/// a random suffix so two recordings of one call never share a file.
pub fn relative_path(call_id: &str, at: DateTime<Utc>) -> String {
    let safe: String = call_id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}/{}-{}-{:06x}.wav",
        at.format("%Y-%m-%d"),
        at.format("%H%M%S"),
        safe.trim_start_matches('.'),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// `dir/rel`, or `None` when `rel` could leave `dir` (absolute, `..`).
pub fn resolve(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !rel.as_os_str().is_empty()).then(|| dir.join(rel))
}

/// Create the file (and its day directory) for writing; an unusable
/// directory (missing rights, a regular file in the way, a full disk) is
/// the error.
pub fn create(path: &Path) -> std::io::Result<BufWriter<File>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let f = OpenOptions::new().write(true).create_new(true).open(path)?;
    Ok(BufWriter::with_capacity(64 * 1024, f))
}

/// Size of a file (0 when it cannot be read).
pub fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// When a file was last written.
pub fn modified(path: &Path) -> Option<DateTime<Utc>> {
    let t = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    Some(DateTime::<Utc>::from(t))
}

/// Finish the header of a recording whose writer never did (the process
/// was killed): the sizes are set from the file's length, a torn last
/// sample is cut off. Returns the samples per channel it holds; an error
/// when the file is missing or is not one of ours.
pub fn repair(path: &Path) -> Result<u64, String> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut head = [0u8; HEADER_BYTES as usize];
    f.read_exact(&mut head)
        .map_err(|_| "the file is shorter than a WAV header".to_string())?;
    check_header(&head)?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let data = (len - HEADER_BYTES) / BLOCK * BLOCK;
    let data32 = u32::try_from(data).map_err(|_| "the file is too large for WAV".to_string())?;
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    f.set_len(HEADER_BYTES + data).map_err(io)?;
    f.seek(SeekFrom::Start(4)).map_err(io)?;
    f.write_all(&(data32 + 36).to_le_bytes()).map_err(io)?;
    f.seek(SeekFrom::Start(40)).map_err(io)?;
    f.write_all(&data32.to_le_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(data / BLOCK)
}

/// Whether `head` is the header ringback writes (8 kHz stereo 16-bit PCM).
fn check_header(head: &[u8; HEADER_BYTES as usize]) -> Result<(), String> {
    let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let ours = &head[0..4] == b"RIFF"
        && &head[8..16] == b"WAVEfmt "
        && u32_at(16) == 16
        && u16_at(20) == 1
        && u16_at(22) == 2
        && u32_at(24) == super::writer::RATE
        && u16_at(34) == 16
        && &head[36..40] == b"data";
    if ours {
        Ok(())
    } else {
        Err("the file does not start with a stereo 8 kHz 16-bit WAV header".into())
    }
}

/// Delete a recording's file (already gone is fine) and its day directory
/// once empty.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(day) = path.parent() {
        // Fails while other recordings of that day remain: that is fine.
        let _ = std::fs::remove_dir(day);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::recording::writer::Session;

    #[test]
    fn paths_stay_inside_the_directory() {
        let at = DateTime::parse_from_rfc3339("2026-03-04T05:06:07Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = relative_path("../a b@host/x", at);
        assert!(p.starts_with("2026-03-04/050607-_a_b_host_x-"), "{p}");
        assert!(p.ends_with(".wav"));
        let dir = Path::new("/rec");
        assert_eq!(resolve(dir, &p), Some(dir.join(&p)));
        assert_eq!(resolve(dir, "../etc/passwd"), None);
        assert_eq!(resolve(dir, "/etc/passwd"), None);
        assert_eq!(resolve(dir, ""), None);
    }

    #[test]
    fn a_header_left_unfinished_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("day/r.wav");
        let mut w = create(&path).unwrap();
        let s = Session::new(&mut w, Instant::now()).unwrap();
        // Killed before the header was finished: it still says 0 bytes.
        std::mem::forget(s);
        w.write_all(&[1, 0, 2, 0].repeat(800)).unwrap();
        w.write_all(&[9, 9]).unwrap(); // a torn sample
        w.flush().unwrap();
        drop(w);
        assert!(hound::WavReader::open(&path).is_ok_and(|r| r.len() == 0));
        assert_eq!(repair(&path), Ok(800));
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.len(), 1600);
        assert_eq!(size(&path), HEADER_BYTES + 3200);
        // Not ours, or not there: an error, no panic.
        std::fs::write(dir.path().join("x.wav"), b"hello").unwrap();
        assert!(repair(&dir.path().join("x.wav")).is_err());
        assert!(repair(&dir.path().join("missing.wav")).is_err());
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(!dir.path().join("day").exists(), "the empty day goes too");
    }

    #[test]
    fn an_unusable_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("recordings");
        std::fs::write(&file, b"not a directory").unwrap();
        assert!(create(&file.join("2026-01-01/r.wav")).is_err());
    }
}
