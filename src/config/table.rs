//! The configuration file as a spanned TOML tree: line numbers, a table's keys split
//! into groups, and each group deserialized into its typed struct with errors of the
//! form `FILE:LINE: key: what was expected`.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

use crate::config::settings::ConfigError;

/// One key of a table and its value, with their spans.
pub type Entry<'a, 'i> = (&'a Spanned<DeString<'i>>, &'a Spanned<DeValue<'i>>);

/// The file being read: its name and where each line starts.
pub struct Doc<'a> {
    /// The file's path, as given.
    pub path: &'a Path,
    starts: Vec<usize>,
}

impl<'a> Doc<'a> {
    /// A document for `source` read from `path`.
    pub fn new(path: &'a Path, source: &str) -> Doc<'a> {
        // Where each line starts, so the line of an offset is a binary search and
        // parsing stays linear however many keys the file has.
        let starts = std::iter::once(0)
            .chain(
                source
                    .bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Doc { path, starts }
    }

    /// Line (from 1) of byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// An error about `key` at `line`.
    pub fn at(&self, line: usize, key: &str, msg: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!("{}:{line}: {key}: {msg}", self.path.display()))
    }

    /// An error about the key of `e`.
    pub fn at_key(&self, e: Entry<'_, '_>, msg: impl std::fmt::Display) -> ConfigError {
        self.at(self.line(e.0.span().start), e.0.get_ref(), msg)
    }

    /// Parses the whole text.
    pub fn parse<'i>(&self, source: &'i str) -> Result<Spanned<DeTable<'i>>, ConfigError> {
        DeTable::parse(source).map_err(|e| {
            let line = e.span().map_or(1, |s| self.line(s.start));
            ConfigError(format!("{}:{line}: {}", self.path.display(), e.message()))
        })
    }

    /// Deserializes `entries` (keys of one table, which spans `whole`) into `T`; an
    /// error names the innermost key at the place serde reports, and its line.
    pub fn typed<T: DeserializeOwned>(
        &self,
        entries: &[Entry<'_, '_>],
        whole: Range<usize>,
        table: &str,
    ) -> Result<T, ConfigError> {
        let mut t = DeTable::new();
        for (k, v) in entries {
            t.insert((*k).clone(), (*v).clone());
        }
        let de = toml::de::Deserializer::from(Spanned::new(whole.clone(), t));
        T::deserialize(de).map_err(|e| {
            let pos = e.span().map_or(whole.start, |s| s.start);
            let key = key_at(entries, pos).unwrap_or(table);
            self.at(self.line(pos), key, plain(e.message()))
        })
    }
}

/// The innermost key whose key or value holds byte `pos`.
fn key_at<'a>(entries: &[Entry<'a, '_>], pos: usize) -> Option<&'a str> {
    for (k, v) in entries {
        let (ks, vs) = (k.span(), v.span());
        let holds = ks.contains(&pos) || vs.contains(&pos) || ks.start == pos;
        if !holds {
            continue;
        }
        return Some(inner_key(v, pos).unwrap_or(k.get_ref().as_ref()));
    }
    None
}

fn inner_key<'a>(v: &'a Spanned<DeValue<'_>>, pos: usize) -> Option<&'a str> {
    match v.get_ref() {
        DeValue::Table(t) => {
            let entries: Vec<Entry<'a, '_>> = t.iter().collect();
            key_at(&entries, pos)
        }
        DeValue::Array(a) => a.iter().find_map(|e| inner_key(e, pos)),
        _ => None,
    }
}

/// serde's wording made plain: what was expected, not Rust's type names.
fn plain(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (_, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return format!("unknown key (expected {})", expected.replace('`', ""));
    }
    let mut m = msg.to_string();
    for (rust, words) in [
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected usize", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
        ("missing field", "missing key"),
        ("expected struct RuleKeys", "expected a [[headers]] table"),
        (
            "expected struct RedirectKeys",
            "expected a [[redirect]] table",
        ),
    ] {
        m = m.replace(rust, words);
    }
    m
}

/// The tables of an array of tables (`[[name]]`), refusing anything else.
pub fn tables<'a, 'i>(
    doc: &Doc<'_>,
    e: Entry<'a, 'i>,
) -> Result<Vec<&'a Spanned<DeValue<'i>>>, ConfigError> {
    let wrong = || doc.at_key(e, format!("expected [[{}]] tables", e.0.get_ref()));
    let arr = e.1.get_ref().as_array().ok_or_else(wrong)?;
    if arr.iter().any(|t| !t.get_ref().is_table()) {
        return Err(wrong());
    }
    Ok(arr.iter().collect())
}

/// A table's entries (empty when it is not a table).
pub fn entries<'a, 'i>(t: &'a Spanned<DeValue<'i>>) -> Vec<Entry<'a, 'i>> {
    t.get_ref().as_table().into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_words_made_plain() {
        assert_eq!(
            plain("invalid type: string \"x\", expected u16"),
            "invalid type: string \"x\", expected a whole number from 0 to 65535"
        );
        assert_eq!(
            plain("unknown field `pth`, expected `path` or `set`"),
            "unknown key (expected path or set)"
        );
    }

    #[test]
    fn lines_of_offsets() {
        let d = Doc::new(Path::new("x"), "a\nbb\n\nc");
        assert_eq!((d.line(0), d.line(2), d.line(5), d.line(6)), (1, 2, 3, 4));
    }
}
