//! Language tags as calls carry them (`es`, `pt-BR`): a caller's language
//! picks a prompt set and may require an agent skill. Both look a tag up
//! from the most specific form to the broadest, so a `pt-BR` caller hears
//! `prompts/pt-br/` where it exists, else `prompts/pt/`, else the default
//! prompts — the fallback users of BCP 47 tags expect.

/// The variable that holds a call's language: seeded from the customer
/// directory, changed by a `set` node (`vars = { language = "es" }`), and
/// shown to agents like every variable.
pub const VAR: &str = "language";

/// The forms of `tag` to try, most specific first, lower-cased: `pt-BR-x`
/// gives `pt-br-x`, `pt-br`, `pt`. An empty or blank tag gives nothing.
pub fn fallbacks(tag: &str) -> Vec<String> {
    let tag = tag.trim().to_ascii_lowercase();
    let mut out = Vec::new();
    let mut end = tag.len();
    while end > 0 {
        let form = &tag[..end];
        if !form.is_empty() && !form.ends_with('-') {
            out.push(form.to_string());
        }
        end = form.rfind('-').unwrap_or(0);
    }
    out
}

/// What `map` (keyed by lower-case tag) holds for `tag`'s most specific
/// form: `es-MX` finds an `es-mx` entry, else an `es` one.
pub fn find<'a, V>(map: &'a std::collections::BTreeMap<String, V>, tag: &str) -> Option<&'a V> {
    fallbacks(tag).iter().find_map(|t| map.get(t))
}

/// The canonical (lower-case) key of a tag, as prompt sets and
/// `[languages.<tag>]` are stored.
pub fn key(tag: &str) -> String {
    tag.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallbacks_go_from_the_whole_tag_to_its_primary_language() {
        assert_eq!(fallbacks("pt-BR"), ["pt-br", "pt"]);
        assert_eq!(fallbacks("zh-Hant-TW"), ["zh-hant-tw", "zh-hant", "zh"]);
        assert_eq!(fallbacks(" ES "), ["es"]);
        assert!(fallbacks("").is_empty());
        assert!(fallbacks("  ").is_empty());
        assert_eq!(fallbacks("en-"), ["en"]);
    }

    #[test]
    fn find_takes_the_most_specific_entry() {
        let map =
            std::collections::BTreeMap::from([("es".to_string(), 1), ("es-mx".to_string(), 2)]);
        assert_eq!(find(&map, "es-MX"), Some(&2));
        assert_eq!(find(&map, "es-AR"), Some(&1));
        assert_eq!(find(&map, "de"), None);
    }

    #[test]
    fn keys_are_lower_case_and_trimmed() {
        assert_eq!(key(" pt-BR"), "pt-br");
    }
}
