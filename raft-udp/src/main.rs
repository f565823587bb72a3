//! The `raft-udp` binary: see `raft-udp --help` and [`raft_udp::cli`].

/// mimalloc instead of the system allocator: a node allocates and frees a
/// few small buffers per datagram, and glibc's malloc spent about 15 % of a
/// leader's CPU at 64 clients on them (see the README's benchmark section).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    raft_udp::cli::main()
}
