//! Transport v2 over a byte stream: the frames and how a message is cut
//! into them. Pure functions over bytes, beside the tasks that do the I/O.
//!
//! ```text
//! frame   = len: u32 LE | packet            (a transport v2 packet)
//! payload = more: u8 | chunk                 (inside a data frame)
//! ```
//!
//! A connection opens with the dialer's initiation (exactly
//! [`INITIATION_LEN`] bytes), the acceptor's response ([`RESPONSE_LEN`])
//! and the dialer's first data frame, whose payload is empty
//! ([`CONFIRM_LEN`] bytes): until it has opened, the acceptor reads only
//! these fixed lengths, into fixed buffers. After it, each data frame
//! carries a chunk of a codec-encoded Raft message of at most
//! [`MAX_CHUNK`] bytes, `more = 1` on every chunk but a message's last.

use raft_host::secure::{DATA_OVERHEAD, MAX_DATA_FRAME, MAX_PAYLOAD, SealError, Session};

pub(crate) use raft_host::secure::{INITIATION_LEN, RESPONSE_LEN};

/// Bytes of the length prefix.
pub(crate) const LEN_BYTES: usize = 4;
/// Bytes of the confirming first data frame (an empty payload).
pub(crate) const CONFIRM_LEN: usize = DATA_OVERHEAD;
/// Bytes of a message in one data frame.
pub(crate) const MAX_CHUNK: usize = MAX_PAYLOAD - 1;

/// Why a frame's length prefix was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadLength(pub(crate) usize);

/// The length a prefix announces, if it is exactly `expected`.
pub(crate) fn fixed_len(prefix: [u8; LEN_BYTES], expected: usize) -> Result<usize, BadLength> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len == expected { Ok(len) } else { Err(BadLength(len)) }
}

/// The length a prefix announces for a data frame after authentication:
/// a payload of at least the `more` byte, at most [`MAX_DATA_FRAME`].
pub(crate) fn data_len(prefix: [u8; LEN_BYTES]) -> Result<usize, BadLength> {
    let len = u32::from_le_bytes(prefix) as usize;
    if (DATA_OVERHEAD + 1..=MAX_DATA_FRAME).contains(&len) { Ok(len) } else { Err(BadLength(len)) }
}

/// Appends `packet` with its length prefix.
pub(crate) fn put_packet(out: &mut Vec<u8>, packet: &[u8]) {
    out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
    out.extend_from_slice(packet);
}

/// Appends one sealed data frame with its length prefix.
fn put_sealed(session: &mut Session, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
    let at = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    if let Err(e) = session.seal(payload, out) {
        out.truncate(at);
        return Err(e);
    }
    let len = (out.len() - at - LEN_BYTES) as u32;
    out[at..at + LEN_BYTES].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Appends the confirming first data frame.
pub(crate) fn put_confirm(session: &mut Session, out: &mut Vec<u8>) -> Result<(), SealError> {
    put_sealed(session, &[], out)
}

/// Appends `message` (codec bytes) as one or more data frames. On error
/// nothing is appended.
pub(crate) fn put_message(session: &mut Session, message: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
    let at = out.len();
    let mut chunk = Vec::with_capacity(message.len().min(MAX_CHUNK) + 1);
    let count = message.len().div_ceil(MAX_CHUNK).max(1);
    for i in 0..count {
        let part = &message[(i * MAX_CHUNK).min(message.len())..((i + 1) * MAX_CHUNK).min(message.len())];
        chunk.clear();
        chunk.push(u8::from(i + 1 < count));
        chunk.extend_from_slice(part);
        if let Err(e) = put_sealed(session, &chunk, out) {
            out.truncate(at);
            return Err(e);
        }
    }
    Ok(())
}

/// A message being put back together from its chunks, within a bound.
#[derive(Debug, Default)]
pub(crate) struct Assembly {
    bytes: Vec<u8>,
}

/// A chunk that does not fit: the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssemblyError {
    /// The payload has no `more` byte, or the byte is neither 0 nor 1.
    Malformed,
    /// The message would exceed the bound.
    TooLarge,
}

impl Assembly {
    /// Adds one opened payload; returns the whole message after its last
    /// chunk. A message longer than `max` is refused.
    pub(crate) fn add(&mut self, payload: &[u8], max: usize) -> Result<Option<Vec<u8>>, AssemblyError> {
        let Some((&more, chunk)) = payload.split_first() else { return Err(AssemblyError::Malformed) };
        if more > 1 {
            return Err(AssemblyError::Malformed);
        }
        if self.bytes.len() + chunk.len() > max {
            return Err(AssemblyError::TooLarge);
        }
        self.bytes.extend_from_slice(chunk);
        if more == 1 {
            return Ok(None);
        }
        Ok(Some(std::mem::take(&mut self.bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Instant, NodeId};
    use raft_host::secure::{Initiator, KeyFile, Responder, SecureConfig, SeededEntropy};

    fn pair() -> (Session, Session) {
        let mut rng = SeededEntropy::new(9);
        let keys = KeyFile::generate(&mut rng).unwrap();
        let (a, b) = (SecureConfig::new(&keys, NodeId(1)), SecureConfig::new(&keys, NodeId(2)));
        let mut init = Vec::new();
        let mut i = Initiator::start(&a, NodeId(2), Instant::ZERO, &mut rng, &mut init).unwrap();
        let mut resp = Vec::new();
        let at_b = Responder::respond(&b, &init, Instant::ZERO, &mut rng, &mut resp).unwrap();
        (i.handle_response(&resp, Instant::ZERO).unwrap(), at_b)
    }

    /// Splits a byte stream into frames, checking each prefix.
    fn frames(mut stream: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while let Some((prefix, rest)) = stream.split_first_chunk::<LEN_BYTES>() {
            let len = data_len(*prefix).unwrap();
            out.push(&rest[..len]);
            stream = &rest[len..];
        }
        out
    }

    #[test]
    fn messages_of_any_size_round_trip_in_chunks() {
        let (mut a, mut b) = pair();
        let sizes = [0usize, 1, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1, 3 * MAX_CHUNK + 5];
        let mut stream = Vec::new();
        for &n in &sizes {
            put_message(&mut a, &vec![n as u8; n], &mut stream).unwrap();
        }
        let mut assembly = Assembly::default();
        let mut got = Vec::new();
        for f in frames(&stream) {
            let payload = b.open(f).unwrap();
            if let Some(m) = assembly.add(&payload, 4 * MAX_CHUNK).unwrap() {
                got.push(m);
            }
        }
        let expected: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![n as u8; n]).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn lengths_and_chunks_out_of_bounds_are_refused() {
        assert_eq!(fixed_len((INITIATION_LEN as u32).to_le_bytes(), INITIATION_LEN), Ok(INITIATION_LEN));
        assert_eq!(fixed_len(u32::MAX.to_le_bytes(), INITIATION_LEN), Err(BadLength(u32::MAX as usize)));
        assert!(data_len((CONFIRM_LEN as u32).to_le_bytes()).is_err(), "an empty payload after the first");
        assert!(data_len(((MAX_DATA_FRAME + 1) as u32).to_le_bytes()).is_err());
        let mut a = Assembly::default();
        assert_eq!(a.add(&[], 10), Err(AssemblyError::Malformed));
        assert_eq!(a.add(&[2, 1], 10), Err(AssemblyError::Malformed));
        assert_eq!(a.add(&[1, 1, 2, 3], 5), Ok(None));
        assert_eq!(a.add(&[0, 4, 5, 6], 5), Err(AssemblyError::TooLarge));
    }
}
