//! The `raft-udp` binary. Placeholder until the UDP service lands.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("raft-udp: the UDP service is not built yet; see README.md");
    ExitCode::from(2)
}
