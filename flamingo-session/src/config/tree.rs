//! Collecting the settings under `flamingo.session`: dotted keys and nested maps, any case,
//! several spellings of one key, Flamingo's legacy aliases.

use super::*;

/// The subtree this module reads.
pub(super) const ROOT: [&str; 2] = ["flamingo", "session"];

/// Where Flamingo's legacy aliases live (all lower case).
pub(super) const LEGACY_ROOTS: [&[&str]; 3] =
    [&["session"], &["core", "healthcheck"], &["healthcheck"]];

/// Flamingo's legacy aliases: the old key (as Flamingo spells it) and the `flamingo.session` key.
pub(super) const LEGACY_ALIASES: &[(&str, &str)] = &[
    ("session.name", "name"),
    ("session.backend", "backend"),
    ("session.secret", "secret"),
    ("session.file", "file"),
    ("session.store.length", "store.length"),
    ("session.max.age", "max.age"),
    ("session.cookie.secure", "cookie.secure"),
    ("session.cookie.path", "cookie.path"),
    ("session.redis.url", "redis.url"),
    ("session.redis.host", "redis.host"),
    ("session.redis.password", "redis.password"),
    ("session.redis.idle.connections", "redis.idle.connections"),
    ("core.healthcheck.checkSession", "healthcheck"),
    ("healthcheck.checkSession", "healthcheck"),
];

pub(super) fn legacy_alias(path: &[String]) -> Option<(&'static str, &'static str)> {
    let joined = path.join(".");
    LEGACY_ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(&joined))
        .copied()
}

/// The position of the walk through the configuration tree.
#[derive(Default)]
pub(super) struct Walk {
    /// Key segments, split at dots and lower-cased.
    pub(super) path: Vec<String>,
    /// The same segments as written.
    pub(super) segments: Vec<String>,
    /// The map keys as written, one per level of nesting.
    pub(super) keys: Vec<String>,
}

/// One value found under a root, with how its key was spelled.
pub(super) struct Found {
    pub(super) path: Vec<String>,
    pub(super) segments: Vec<String>,
    pub(super) keys: Vec<String>,
    pub(super) value: ValueKind,
    pub(super) from_environment: bool,
}

/// A setting after the spellings of its key have been merged.
pub(super) struct Merged {
    pub(super) segments: Vec<String>,
    pub(super) value: ValueKind,
}

pub(super) fn interesting(path: &[String]) -> bool {
    let roots = std::iter::once(&ROOT[..]).chain(LEGACY_ROOTS);
    roots.into_iter().any(|root| {
        let shared = root.len().min(path.len());
        root[..shared]
            .iter()
            .zip(&path[..shared])
            .all(|(a, b)| *a == b)
    })
}

pub(super) fn under_a_root(path: &[String]) -> bool {
    let roots = std::iter::once(&ROOT[..]).chain(LEGACY_ROOTS);
    roots
        .into_iter()
        .any(|root| path.len() >= root.len() && root.iter().zip(path).all(|(a, b)| *a == b))
}

/// Collects every non-null leaf under [`ROOT`] and [`LEGACY_ROOTS`], splitting dotted keys.
pub(super) fn flatten(value: &::config::Value, walk: &mut Walk, found: &mut Vec<Found>) {
    match &value.kind {
        ValueKind::Nil => {}
        ValueKind::Table(table) => {
            for (name, child) in table {
                let parts: Vec<&str> = name.split('.').collect();
                walk.path.extend(parts.iter().map(|p| p.to_lowercase()));
                walk.segments.extend(parts.iter().map(|p| (*p).to_owned()));
                walk.keys.push(name.clone());
                if interesting(&walk.path) {
                    flatten(child, walk, found);
                }
                let depth = walk.path.len() - parts.len();
                walk.path.truncate(depth);
                walk.segments.truncate(depth);
                walk.keys.pop();
            }
        }
        leaf => {
            if under_a_root(&walk.path) {
                found.push(Found {
                    path: walk.path.clone(),
                    segments: walk.segments.clone(),
                    keys: walk.keys.clone(),
                    value: leaf.clone(),
                    from_environment: value.origin() == Some(ENVIRONMENT_ORIGIN),
                });
            }
        }
    }
}

/// The origin the `config` crate gives values read by `config::Environment`.
pub(super) const ENVIRONMENT_ORIGIN: &str = "the environment";

/// Merges the spellings of each key: the environment wins; otherwise they must agree.
pub(super) fn merge_spellings(
    found: Vec<Found>,
) -> Result<BTreeMap<Vec<String>, Merged>, ConfigError> {
    let mut groups: BTreeMap<Vec<String>, Vec<Found>> = BTreeMap::new();
    for f in found {
        groups.entry(f.path.clone()).or_default().push(f);
    }
    let mut merged = BTreeMap::new();
    for (path, mut spellings) in groups {
        if spellings.iter().any(|f| f.from_environment) {
            spellings.retain(|f| f.from_environment);
        }
        let first = spellings.swap_remove(0);
        if let Some(other) = spellings.iter().find(|f| f.value != first.value) {
            let written =
                |keys: &[String]| keys.iter().map(|k| format!("[{k:?}]")).collect::<String>();
            return Err(ConfigError::new(
                first.segments.join("."),
                format!(
                    "set twice with different values, spelled {} and {}; the config crate does \
                     not record which source came last, so spell this key one way in all files",
                    written(&first.keys),
                    written(&other.keys)
                ),
            ));
        }
        merged.insert(
            path,
            Merged {
                segments: first.segments,
                value: first.value,
            },
        );
    }
    Ok(merged)
}
