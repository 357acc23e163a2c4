//! "Did you mean …?" suggestions.
//!
//! A misspelled node or prompt name is the most common dialplan mistake; the
//! fix is obvious once the operator sees the closest existing name.

/// Optimal-string-alignment distance (Levenshtein plus adjacent
/// transpositions, so `mian` → `main` is one edit, as humans count it).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// The closest candidate to `wanted`, if it is close enough to be a typo
/// (at most a third of the word's length, and at least one edit allowed).
/// Ties go to the alphabetically first candidate so output is stable.
pub(crate) fn closest<'a, I>(wanted: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (wanted.chars().count() / 3).max(1);
    let lower = wanted.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != wanted)
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// ` (did you mean `x`?)` or the empty string, ready to append to a message.
pub(crate) fn did_you_mean<'a, I>(wanted: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    match closest(wanted, candidates) {
        Some(c) => format!(" (did you mean `{c}`?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_transpositions_as_one() {
        assert_eq!(edit_distance("main", "main"), 0);
        assert_eq!(edit_distance("mian", "main"), 1);
        assert_eq!(edit_distance("supprt", "support"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("billing", "xyz"), 7);
    }

    #[test]
    fn suggests_only_plausible_typos() {
        let names = ["main", "support", "billing", "closed"];
        assert_eq!(closest("mian", names), Some("main"));
        assert_eq!(closest("suport", names), Some("support"));
        assert_eq!(closest("Billing", names), Some("billing"));
        assert_eq!(closest("operator", names), None);
        assert_eq!(did_you_mean("xyz", names), "");
        assert_eq!(did_you_mean("closd", names), " (did you mean `closed`?)");
    }
}
