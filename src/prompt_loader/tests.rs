//! The prompt cache on real files: decoding, errors, reuse on reload,
//! language sets.

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
    let w = cache.get_in(None, "welcome").unwrap();
    assert!((w.duration().as_secs_f64() - 0.3).abs() < 0.02);
    assert!(cache.get_in(None, "nope").is_none());
    // Sharing: the same Arc, no copy.
    assert!(Arc::ptr_eq(
        &cache.get_in(None, "menu").unwrap(),
        &cache.get_in(None, "menu").unwrap()
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
        assert!(Arc::ptr_eq(
            &first.get_in(None, n).unwrap(),
            &second.get_in(None, n).unwrap()
        ));
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
    let (second, _, decoded) = PromptCache::reload_dir_racy(dir, &first, Duration::ZERO).unwrap();
    assert_eq!(decoded, 1);
    let new_a = second.get_in(None, "a").unwrap().to_pcm();
    assert!(goertzel::tone_power(&new_a, 1000.0) > 0.9 * goertzel::mean_power(&new_a));
    assert!(!Arc::ptr_eq(
        &first.get_in(None, "a").unwrap(),
        &second.get_in(None, "a").unwrap()
    ));
    assert!(Arc::ptr_eq(
        &first.get_in(None, "b").unwrap(),
        &second.get_in(None, "b").unwrap()
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
        &first.get_in(None, "b").unwrap(),
        &second.get_in(None, "b").unwrap()
    ));
    // A file that was broken is tried again, and counts once it is fixed.
    std::fs::write(dir.join("d.wav"), b"RIFF....WAVE").unwrap();
    let (third, errors, _) = PromptCache::reload_dir_racy(dir, &second, Duration::ZERO).unwrap();
    assert_eq!(errors.len(), 1);
    assert!(third.get_in(None, "d").is_none());
    write_wav(&dir.join("d.wav"), &sine(500.0, 8000, 0.2, 0.5), 8000);
    let (fourth, errors, _) = PromptCache::reload_dir_racy(dir, &third, Duration::ZERO).unwrap();
    assert!(errors.is_empty());
    assert!(fourth.get_in(None, "d").is_some());
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
        &first.get_in(None, "fresh").unwrap(),
        &second.get_in(None, "fresh").unwrap()
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
    let translated: usize = cache.sets.values().map(|m| m.len()).sum();
    assert_eq!(decoded, n + translated);
    assert!(cache.untranslated_defaults().is_empty());
}

#[test]
fn language_sets_load_from_tag_directories_and_fall_back_to_the_broader_tag_then_the_default() {
    let dir = TempDir::new().unwrap();
    let tone = |path: &Path, freq: f64| write_wav(path, &sine(freq, 8000, 0.3, 0.5), 8000);
    tone(&dir.path().join("welcome.wav"), 440.0);
    tone(&dir.path().join("menu.wav"), 440.0);
    for sub in ["es", "pt-BR", "not a tag", "music"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    tone(&dir.path().join("es/welcome.wav"), 700.0);
    tone(&dir.path().join("es/solo-es.wav"), 700.0);
    tone(&dir.path().join("pt-BR/welcome.wav"), 900.0);
    tone(&dir.path().join("not a tag/welcome.wav"), 1200.0);
    let (cache, errors) = PromptCache::load_dir(dir.path()).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        cache.languages(),
        ["es", "pt-br"],
        "no set from a directory that is not a tag, nor from one without WAVs"
    );
    let freq = |language: Option<&str>, name: &str| {
        let pcm = cache.get_in(language, name).unwrap().to_pcm();
        [440.0, 700.0, 900.0]
            .into_iter()
            .max_by(|a, b| {
                goertzel::tone_power(&pcm, *a).total_cmp(&goertzel::tone_power(&pcm, *b))
            })
            .unwrap()
    };
    assert_eq!(freq(None, "welcome"), 440.0);
    assert_eq!(freq(Some("es"), "welcome"), 700.0);
    assert_eq!(
        freq(Some("es-MX"), "welcome"),
        700.0,
        "es-MX falls back to es"
    );
    assert_eq!(
        freq(Some("PT-br"), "welcome"),
        900.0,
        "tags match in any case"
    );
    assert_eq!(freq(Some("pt"), "welcome"), 440.0, "pt is not pt-BR");
    assert_eq!(freq(Some("es"), "menu"), 440.0, "untranslated: the default");
    assert_eq!(freq(Some("de"), "welcome"), 440.0);
    assert!(cache.get_in(None, "solo-es").is_none());
    assert_eq!(cache.untranslated_defaults(), [("es", "solo-es")]);
}
