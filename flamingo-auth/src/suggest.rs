//! "Did you mean" hints for unknown config keys.
//!
//! The same rule as `flamingo-session`'s config (a Levenshtein distance of at most a third of
//! the key's length, case-insensitive), kept here until both crates share one config reader.

/// The known key closest to `unknown`, if it is close enough to be a typo.
///
/// # Examples (crate-internal)
///
/// `closest("userConfg", &["userConfig", "validatePassword"]) == Some("userConfig")`.
pub(crate) fn closest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let unknown = unknown.to_ascii_lowercase();
    let (distance, name) = known
        .iter()
        .map(|k| (edit_distance(&k.to_ascii_lowercase(), &unknown), *k))
        .min()?;
    (distance <= (unknown.chars().count() / 3).max(1)).then_some(name)
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_matched_and_strangers_are_not() {
        let known = ["broker", "debugController", "userConfig"];
        assert_eq!(closest("brokers", &known), Some("broker"));
        assert_eq!(closest("USERCONFG", &known), Some("userConfig"));
        assert_eq!(closest("debugcontroler", &known), Some("debugController"));
        assert_eq!(closest("timeout", &known), None);
        assert_eq!(closest("x", &[]), None);
    }
}
