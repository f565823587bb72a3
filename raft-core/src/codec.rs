//! The wire format: bincode 2 (varint integers) over [`Message`], as pure functions.
//!
//! This is the only module that names bincode, so the encoding can be swapped
//! in one place. Decoding borrows from the input: no allocation is made for a
//! length field before the bytes it announces are known to be present, so a
//! hostile frame cannot make the decoder allocate more than about its own size.

use crate::message::Message;
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Serialize};

/// Largest input [`decode_value`] and [`decode_message`] accept. Transports should use a smaller limit.
pub const MAX_DECODE_BYTES: usize = 64 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_little_endian().with_variable_int_encoding().with_limit::<MAX_DECODE_BYTES>()
}

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than [`MAX_DECODE_BYTES`].
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The bytes are not a valid encoding (truncated, unknown tag, bad length...).
    Malformed(alloc::string::String),
    /// A valid value was followed by unread bytes.
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { len } => write!(f, "input of {len} bytes exceeds {MAX_DECODE_BYTES}"),
            DecodeError::Malformed(why) => write!(f, "malformed input: {why}"),
            DecodeError::TrailingBytes { extra } => write!(f, "{extra} unexpected bytes after the value"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a value could not be encoded (only possible for values over the size limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError(alloc::string::String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode: {}", self.0)
    }
}

impl core::error::Error for EncodeError {}

/// Encodes any serde value with the project's wire configuration.
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| EncodeError(alloc::format!("{e}")))
}

/// Decodes a whole buffer into one value; trailing bytes are an error.
pub fn decode_value<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_DECODE_BYTES {
        return Err(DecodeError::TooLarge { len: bytes.len() });
    }
    let (value, used) = bincode::serde::borrow_decode_from_slice(bytes, config())
        .map_err(|e| DecodeError::Malformed(alloc::format!("{e}")))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes { extra: bytes.len() - used });
    }
    Ok(value)
}

/// Encodes a message. Its length never exceeds the bound the core used to size it
/// (see `Config::max_message_bytes`).
pub fn encode_message(msg: &Message) -> Vec<u8> {
    // Messages hold only integers, enums and byte strings: encoding cannot fail
    // below the decode limit, and the core never builds a message above it.
    encode_value(msg).unwrap_or_default()
}

/// Decodes one message from exactly `bytes`. Never panics; any defect is an error.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    decode_value(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;
    use crate::types::{Bytes, Entry, LogIndex, Payload, Term};
    use alloc::vec;

    fn sample() -> Vec<Message> {
        vec![
            Message {
                term: Term(3),
                body: Body::RequestVote(RequestVote {
                    last_log_index: LogIndex(9),
                    last_log_term: Term(2),
                    pre_vote: false,
                    transfer: false,
                }),
            },
            Message { term: Term(3), body: Body::RequestVoteResponse(VoteResponse { granted: true, pre_vote: false }) },
            Message {
                term: Term(u64::MAX),
                body: Body::AppendEntries(AppendEntries {
                    prev_log_index: LogIndex(u64::MAX),
                    prev_log_term: Term(1),
                    entries: vec![
                        Entry { term: Term(2), index: LogIndex(5), payload: Payload::Noop },
                        Entry {
                            term: Term(2),
                            index: LogIndex(6),
                            payload: Payload::Command(Bytes::from(&[7u8; 300])),
                        },
                    ],
                    leader_commit: LogIndex(4),
                    round: 0,
                }),
            },
            Message {
                term: Term(1),
                body: Body::AppendEntriesResponse(crate::AppendResponse {
                    round: 0,
                    result: AppendResult::Success { match_index: LogIndex(8) },
                }),
            },
            Message {
                term: Term(1),
                body: Body::AppendEntriesResponse(crate::AppendResponse {
                    round: 0,
                    result: AppendResult::Reject {
                        prev_log_index: LogIndex(8),
                        last_log_index: LogIndex(3),
                        conflict_term: None,
                        conflict_index: LogIndex(4),
                    },
                }),
            },
        ]
    }

    #[test]
    fn round_trip() {
        for m in sample() {
            let bytes = encode_message(&m);
            assert_eq!(decode_message(&bytes), Ok(m));
        }
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        for m in sample() {
            let bytes = encode_message(&m);
            for cut in 0..bytes.len() {
                assert!(decode_message(&bytes[..cut]).is_err(), "cut at {cut} of {m:?}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode_message(&longer), Err(DecodeError::TrailingBytes { extra: 1 }));
        }
    }

    #[test]
    fn input_of_exactly_max_decode_bytes_is_decoded_and_one_byte_more_is_too_large() {
        // Zeros start with a small message, so the rest is trailing bytes.
        let zero = Message {
            term: Term(0),
            body: Body::RequestVote(RequestVote {
                last_log_index: LogIndex(0),
                last_log_term: Term(0),
                pre_vote: false,
                transfer: false,
            }),
        };
        let used = encode_message(&zero).len();
        let mut bytes = vec![0u8; MAX_DECODE_BYTES];
        assert_eq!(decode_message(&bytes[..used]), Ok(zero));
        let extra = MAX_DECODE_BYTES - used;
        assert_eq!(decode_message(&bytes), Err(DecodeError::TrailingBytes { extra }));
        bytes.push(0);
        assert_eq!(decode_message(&bytes), Err(DecodeError::TooLarge { len: MAX_DECODE_BYTES + 1 }));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate_or_panic() {
        // AppendEntries whose entry vector claims u64::MAX elements, then a
        // command whose byte length claims ~2^63.
        // (bincode varint: 0xFD announces a little-endian u64.)
        let mut bytes = vec![1u8, 2, 0, 0, 0xFD];
        bytes.extend_from_slice(&[0xFF; 8]);
        assert!(matches!(decode_message(&bytes), Err(DecodeError::Malformed(_))));
        let m = Message {
            term: Term(1),
            body: Body::AppendEntries(AppendEntries {
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries: vec![Entry {
                    term: Term(1),
                    index: LogIndex(1),
                    payload: Payload::Command(Bytes::from(&[1u8; 4])),
                }],
                leader_commit: LogIndex(0),
                round: 0,
            }),
        };
        let mut bytes = encode_message(&m);
        // Layout ends with: length prefix, 4 payload bytes, leader_commit and round (1 byte each).
        let at = bytes.len() - 7;
        assert_eq!(bytes[at], 4);
        bytes.truncate(at);
        bytes.extend_from_slice(&[0xFD, 0, 0, 0, 0, 0, 0, 0, 0x40]); // u64 length 2^62
        assert!(decode_message(&bytes).is_err());
    }

    #[test]
    fn size_bound_covers_encoding() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let e = Entry {
                term: Term(u64::MAX),
                index: LogIndex(u64::MAX),
                payload: Payload::Command(Bytes::from(vec![0u8; len])),
            };
            let m = Message {
                term: Term(u64::MAX),
                body: Body::AppendEntries(AppendEntries {
                    prev_log_index: LogIndex(u64::MAX),
                    prev_log_term: Term(u64::MAX),
                    entries: vec![e.clone(), e.clone()],
                    leader_commit: LogIndex(u64::MAX),
                    round: 0,
                }),
            };
            let bound = crate::config::APPEND_OVERHEAD_BYTES + 2 * e.size_bound();
            assert!(encode_message(&m).len() <= bound, "len {len}");
        }
    }

    #[test]
    fn membership_size_bound_covers_encoding() {
        // Ids at the top of the range take the most bytes; addresses of
        // every length from none up.
        let big = |k: u64| crate::NodeId(u64::MAX - k);
        let mut cases = vec![crate::Membership::default()];
        for n in [1u64, 3, 10] {
            let ids = (0..n).map(big);
            let mut m = crate::Membership::with_voters(ids.clone());
            cases.push(m.clone());
            m.learners = (2 * n..3 * n).map(big).collect();
            cases.push(m.clone());
            m.outgoing = (n..2 * n).map(big).collect();
            m.learners = (2 * n..3 * n).map(big).collect();
            cases.push(m.clone());
            let addrs = (0..3 * n).map(|k| (big(k), Bytes::from(vec![b'a'; k as usize])));
            m.addrs = addrs.collect();
            cases.push(m);
            // Addresses alone (of members known by address only).
            let only = (0..n).map(|k| (big(k), Bytes::from(vec![b'a'; k as usize])));
            cases.push(crate::Membership { addrs: only.collect(), ..Default::default() });
            let empty = (0..n).map(|k| (big(k), Bytes::from(alloc::vec::Vec::new())));
            cases.push(crate::Membership { addrs: empty.collect(), ..Default::default() });
        }
        for m in cases {
            let len = encode_value(&m).unwrap().len();
            assert!(len <= m.size_bound(), "{len} > {} for {m:?}", m.size_bound());
        }
    }

    quickcheck::quickcheck! {
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) -> bool {
            let _ = decode_message(&bytes);
            true
        }
    }
}
