//! The `raft-udp` binary: see `raft-udp --help` and [`raft_udp::cli`].

fn main() -> std::process::ExitCode {
    raft_udp::cli::main()
}
