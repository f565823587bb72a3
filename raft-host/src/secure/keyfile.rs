//! Key file v2: the cluster key and the cluster's incarnation id.
//!
//! ```text
//! raft-key-file v2
//! key 64 hex digits
//! incarnation 32 hex digits
//! ```
//!
//! One field a line, in this order; blank lines and lines starting with `#`
//! are ignored, as is white space around a line. The incarnation is made at
//! bootstrap ([`KeyFile::generate`]) and never changes: a cluster rebuilt
//! with the same key but a new incarnation refuses every frame of the old
//! one. A version 1 file (the bare 64 hex digits of the key) is recognised
//! and refused with [`KeyFileError::Version1`], since silently inventing an
//! incarnation on each node would split the cluster.

use super::entropy::{Entropy, EntropyError};
use crate::auth::{ClusterKey, KEY_LEN};
use std::fmt;

/// Length of an incarnation id in bytes.
pub const INCARNATION_LEN: usize = 16;
/// The largest key file [`KeyFile::parse`] reads.
pub const MAX_KEY_FILE_BYTES: usize = 4096;
const MAGIC: &str = "raft-key-file";

/// The random id of one cluster incarnation, made at bootstrap.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Incarnation([u8; INCARNATION_LEN]);

impl Incarnation {
    /// A fresh id from `entropy`.
    pub fn generate(entropy: &mut dyn Entropy) -> Result<Incarnation, EntropyError> {
        let mut id = [0u8; INCARNATION_LEN];
        entropy.fill(&mut id)?;
        Ok(Incarnation(id))
    }

    /// The id with these bytes.
    pub fn from_bytes(bytes: [u8; INCARNATION_LEN]) -> Incarnation {
        Incarnation(bytes)
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8; INCARNATION_LEN] {
        &self.0
    }
}

impl fmt::Debug for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Incarnation({})", hex(&self.0))
    }
}

/// The contents of a version 2 key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// The cluster's shared secret.
    pub key: ClusterKey,
    /// The cluster's incarnation.
    pub incarnation: Incarnation,
}

/// Why a key file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Larger than [`MAX_KEY_FILE_BYTES`].
    TooLarge {
        /// Its size in bytes.
        len: usize,
    },
    /// A version 1 file: a key without an incarnation. Write a version 2
    /// file with the same key and one new incarnation, and give that same
    /// file to every node.
    Version1,
    /// The first line is not `raft-key-file v2`.
    BadHeader,
    /// A `raft-key-file` version this code does not read.
    UnknownVersion(u32),
    /// A line that is not the field expected there.
    UnexpectedLine {
        /// Its 1-based number.
        line: usize,
        /// The field expected.
        expected: &'static str,
    },
    /// The file ends before this field.
    Missing(&'static str),
    /// A field's value is not the right number of hex digits.
    BadValue {
        /// Its 1-based line number.
        line: usize,
        /// The field.
        field: &'static str,
        /// The hex digits it needs.
        digits: usize,
    },
    /// The random source failed while making a new file.
    Random(EntropyError),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::TooLarge { len } => {
                write!(f, "key file of {len} bytes is larger than {MAX_KEY_FILE_BYTES}")
            }
            KeyFileError::Version1 => f.write_str(
                "version 1 key file (a key without a cluster incarnation): write a version 2 file once and copy it to every node",
            ),
            KeyFileError::BadHeader => write!(f, "key file does not start with `{MAGIC} v2`"),
            KeyFileError::UnknownVersion(v) => write!(f, "key file version {v} is not supported (this build reads 2)"),
            KeyFileError::UnexpectedLine { line, expected } => {
                write!(f, "key file line {line}: expected the `{expected}` field")
            }
            KeyFileError::Missing(field) => write!(f, "key file has no `{field}` field"),
            KeyFileError::BadValue { line, field, digits } => {
                write!(f, "key file line {line}: `{field}` needs {digits} hex digits")
            }
            KeyFileError::Random(e) => write!(f, "cannot make a key file: {e}"),
        }
    }
}

impl std::error::Error for KeyFileError {}

impl KeyFile {
    /// The file of `key` and `incarnation`.
    pub fn new(key: ClusterKey, incarnation: Incarnation) -> KeyFile {
        KeyFile { key, incarnation }
    }

    /// A new cluster: a fresh key and a fresh incarnation.
    pub fn generate(entropy: &mut dyn Entropy) -> Result<KeyFile, KeyFileError> {
        let mut key = [0u8; KEY_LEN];
        entropy.fill(&mut key).map_err(KeyFileError::Random)?;
        let incarnation = Incarnation::generate(entropy).map_err(KeyFileError::Random)?;
        Ok(KeyFile { key: ClusterKey::from_bytes(key), incarnation })
    }

    /// Reads the text of a key file.
    pub fn parse(text: &str) -> Result<KeyFile, KeyFileError> {
        if text.len() > MAX_KEY_FILE_BYTES {
            return Err(KeyFileError::TooLarge { len: text.len() });
        }
        let trimmed = text.trim();
        if trimmed.len() == 2 * KEY_LEN && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyFileError::Version1);
        }
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let (_, header) = lines.next().ok_or(KeyFileError::BadHeader)?;
        match header.strip_prefix(MAGIC).map(str::trim_start).and_then(|v| v.strip_prefix('v')) {
            Some("2") => {}
            Some(v) => return Err(v.parse().map(KeyFileError::UnknownVersion).unwrap_or(KeyFileError::BadHeader)),
            None => return Err(KeyFileError::BadHeader),
        }
        let key = field::<KEY_LEN>(lines.next(), "key")?;
        let incarnation = field::<INCARNATION_LEN>(lines.next(), "incarnation")?;
        if let Some((line, _)) = lines.next() {
            return Err(KeyFileError::UnexpectedLine { line, expected: "end of file" });
        }
        Ok(KeyFile { key: ClusterKey::from_bytes(key), incarnation: Incarnation(incarnation) })
    }

    /// The text of this key file.
    pub fn format(&self) -> String {
        format!("{MAGIC} v2\nkey {}\nincarnation {}\n", self.key.to_hex(), hex(&self.incarnation.0))
    }
}

fn field<const N: usize>(line: Option<(usize, &str)>, name: &'static str) -> Result<[u8; N], KeyFileError> {
    let (number, text) = line.ok_or(KeyFileError::Missing(name))?;
    let value = text
        .strip_prefix(name)
        .filter(|rest| rest.starts_with([' ', '\t']))
        .ok_or(KeyFileError::UnexpectedLine { line: number, expected: name })?
        .trim();
    let bad = KeyFileError::BadValue { line: number, field: name, digits: 2 * N };
    if value.len() != 2 * N {
        return Err(bad);
    }
    let mut out = [0u8; N];
    for (i, pair) in value.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => out[i] = h << 4 | l,
            _ => return Err(bad),
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::SeededEntropy;

    fn sample() -> KeyFile {
        KeyFile::generate(&mut SeededEntropy::new(5)).unwrap()
    }

    #[test]
    fn format_parse_round_trip() {
        let file = sample();
        let text = file.format();
        assert!(text.starts_with("raft-key-file v2\nkey "));
        assert_eq!(KeyFile::parse(&text), Ok(file.clone()));
        let spaced = format!("# cluster east\n\n  {}\n", text.replace('\n', "  \n\n"));
        assert_eq!(KeyFile::parse(&spaced), Ok(file));
        assert_ne!(sample().format(), KeyFile::generate(&mut SeededEntropy::new(6)).unwrap().format());
    }

    #[test]
    fn refusals_are_typed() {
        let file = sample();
        let text = file.format();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(KeyFile::parse(&file.key.to_hex()), Err(KeyFileError::Version1));
        assert_eq!(KeyFile::parse(""), Err(KeyFileError::BadHeader));
        assert_eq!(KeyFile::parse("hello\n"), Err(KeyFileError::BadHeader));
        assert_eq!(KeyFile::parse(&text.replace("v2", "v3")), Err(KeyFileError::UnknownVersion(3)));
        assert_eq!(KeyFile::parse(&text.replace("v2", "vx")), Err(KeyFileError::BadHeader));
        assert_eq!(KeyFile::parse(lines[0]), Err(KeyFileError::Missing("key")));
        assert_eq!(KeyFile::parse(&lines[..2].join("\n")), Err(KeyFileError::Missing("incarnation")));
        let swapped = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
        assert_eq!(KeyFile::parse(&swapped), Err(KeyFileError::UnexpectedLine { line: 2, expected: "key" }));
        assert_eq!(
            KeyFile::parse(&format!("{text}extra\n")),
            Err(KeyFileError::UnexpectedLine { line: 4, expected: "end of file" })
        );
        let short = format!("{}\n{}\n{}\n", lines[0], lines[1], &lines[2][..lines[2].len() - 2]);
        assert_eq!(KeyFile::parse(&short), Err(KeyFileError::BadValue { line: 3, field: "incarnation", digits: 32 }));
        let non_hex = format!("{}\nkey zz{}\n{}\n", lines[0], &file.key.to_hex()[2..], lines[2]);
        assert!(matches!(KeyFile::parse(&non_hex), Err(KeyFileError::BadValue { line: 2, field: "key", .. })));
        let big = "#".repeat(MAX_KEY_FILE_BYTES + 1);
        assert_eq!(KeyFile::parse(&big), Err(KeyFileError::TooLarge { len: MAX_KEY_FILE_BYTES + 1 }));
        assert!(KeyFileError::Version1.to_string().contains("version 2"));
    }

    quickcheck::quickcheck! {
        fn arbitrary_text_never_panics(text: String) -> bool {
            let _ = KeyFile::parse(&text);
            true
        }
    }
}
