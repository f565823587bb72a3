//! What raft-tokio and raft-smol share for development, written once over
//! any [`raft_net::Runtime`]: the bodies of their examples ([`kv::main`],
//! [`bench::main`]: each example is its runtime's `main` around one of
//! them) and their API tests ([`api_cases`]). The two runtime crates thus
//! show the same programs and test the same promises, and cannot drift apart.
//!
//! Not published: the runtime crates name it as a path-only
//! dev-dependency, which packaging strips.

pub mod api_cases;
pub mod bench;
pub mod kv;

use std::process::ExitCode;

/// The exit code for an example's outcome (the error printed to stderr).
pub fn exit(outcome: Result<(), String>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
