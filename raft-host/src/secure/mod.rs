//! Transport protocol v2 (in progress): the key file v2, handshake
//! randomness and the replay window.

mod entropy;
mod keyfile;
mod replay;

pub use entropy::{Entropy, EntropyError, OsEntropy, SeededEntropy};
pub use keyfile::{INCARNATION_LEN, Incarnation, KeyFile, KeyFileError, MAX_KEY_FILE_BYTES};
pub use replay::REPLAY_WINDOW;
