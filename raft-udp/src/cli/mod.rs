//! The `raft-udp` command line.
//!
//! Exit status: 0 success; 1 a command definitely failed (or a node failed
//! while running); 2 bad usage, an unreadable key file, a data directory of
//! another node or cluster, or a command whose outcome is unknown. Every
//! error is one line on standard error, starting with `raft-udp:`.

mod args;
mod bench;
mod bench_failover;
mod cluster;
mod cluster_member;
mod floor;
mod kv;
mod member;
mod status;
mod status_table;
mod transfer;

use crate::server::{self, NodeOptions};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::level_filters::LevelFilter;

/// A replicated key-value store over authenticated UDP, built on Raft.
#[derive(Parser, Debug)]
#[command(name = "raft-udp", version, max_term_width = 100)]
struct Cli {
    /// Log level on standard error: off, error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL")]
    log_level: LevelFilter,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a new key file (a random cluster key and cluster incarnation,
    /// format version 2); give every node of one cluster the same file.
    Keygen,
    /// Run one node of a cluster.
    Node(NodeArgs),
    /// Run commands read from standard input, one per line (put KEY VALUE,
    /// get KEY, delete KEY, cas KEY EXPECTED NEW), printing one JSON line each.
    Client(ConnArgs),
    /// Set KEY to VALUE. Exit 0 ok, 1 definitely failed, 2 outcome unknown.
    Put {
        #[command(flatten)]
        conn: ConnArgs,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read KEY (linearizable). Exit 0 ok, 1 definitely failed, 2 outcome unknown.
    Get {
        #[command(flatten)]
        conn: ConnArgs,
        /// The key.
        key: String,
    },
    /// Remove KEY. Exit 0 ok, 1 definitely failed, 2 outcome unknown.
    Delete {
        #[command(flatten)]
        conn: ConnArgs,
        /// The key.
        key: String,
    },
    /// Set KEY to NEW if it holds EXPECTED. Exit 0 ok (swapped or not), 1
    /// definitely failed, 2 outcome unknown.
    Cas {
        #[command(flatten)]
        conn: ConnArgs,
        /// The key.
        key: String,
        /// The value KEY must hold.
        expected: String,
        /// The value to store.
        new: String,
    },
    /// Print one JSON line per reachable node with its role, term and indexes.
    Status(StatusArgs),
    /// Start a local cluster on loopback, show its status live and run
    /// commands typed on standard input. Ctrl-C or end of input stops it.
    Cluster(cluster::ClusterArgs),
    /// Closed-loop put load from several clients; one JSON line of results.
    Bench(bench::BenchArgs),
    /// Kill -9 the leader of a local cluster, retry a one-shot put until it
    /// succeeds; one JSON line per round with the time from kill to success.
    BenchFailover(bench_failover::BenchFailoverArgs),
    /// Move leadership to node --to. Prints {"ok":true,"leader":N,"term":T}
    /// and exits 0 once it leads; {"ok":false,"error":...} and 1 otherwise.
    TransferLeader(transfer::TransferArgs),
    /// List the cluster's members, add one (learner, then voter) or remove one.
    Member(member::MemberArgs),
}

#[derive(Args, Debug, Clone)]
struct NodeArgs {
    /// This node's id (unique in the cluster).
    #[arg(long)]
    id: u64,
    /// UDP address to listen on, for peers and clients.
    #[arg(long, value_name = "ADDR", value_parser = args::addr)]
    listen: SocketAddr,
    /// Another member, as ID=ADDR; give one per other member. They bootstrap
    /// a new cluster; once the data directory holds a configuration they
    /// are ignored (and the node logs that).
    #[arg(long = "peer", value_name = "ID=ADDR", value_parser = args::peer)]
    peers: Vec<(u64, SocketAddr)>,
    /// Start as a node that is not yet a member: it waits for a leader to
    /// add it (`raft-udp member add`), learns every address from the
    /// configuration it receives, and never campaigns before it is a voter.
    #[arg(long, conflicts_with = "peers")]
    join: bool,
    /// Directory of this node's log (created if missing).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// File holding the cluster key (from `raft-udp keygen`).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Leader heartbeat interval in milliseconds.
    #[arg(long, default_value_t = DEFAULT_HEARTBEAT_MS, value_parser = args::positive)]
    heartbeat_ms: u64,
    /// Election timeout range in milliseconds, MIN-MAX.
    #[arg(long, default_value = "300-600", value_name = "MIN-MAX", value_parser = args::ms_range)]
    election_timeout_ms: (u64, u64),
    /// Largest datagram sent to a peer, in bytes; larger messages are fragmented.
    #[arg(long, default_value_t = 1400)]
    max_datagram: usize,
    /// Stop cleanly when standard input reaches its end (used by `cluster`).
    #[arg(long, hide = true)]
    exit_on_stdin_eof: bool,
    /// Snapshot every N applied entries instead of 100,000 (for tests).
    #[arg(long, hide = true, value_parser = args::positive)]
    snapshot_after_entries: Option<u64>,
    /// Serve Prometheus metrics over HTTP at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", value_parser = args::addr)]
    metrics_listen: Option<SocketAddr>,
    /// Before starting, repair a log that start-up refused as corrupt: keep
    /// the log before the damage, discard the rest; the node then neither
    /// votes nor campaigns until it has caught up from the leader.
    #[arg(long)]
    repair: bool,
    /// When the log's synced watermark moves. before-ack: each group commit
    /// fdatasyncs its records, then the watermark (damage to any
    /// acknowledged record is reported as corruption). deferred: one
    /// fdatasync per group commit, the watermark following one commit
    /// behind or when idle (damage to the last commit's records before a
    /// crash would be cut as a torn write).
    #[arg(long, value_enum, default_value_t = WatermarkArg::BeforeAck)]
    watermark: WatermarkArg,
    /// How the leader confirms it still leads before answering a get.
    /// safe: ReadIndex, a heartbeat round a majority acknowledges (assumes
    /// nothing about clocks). lease: at once while its lease holds
    /// (`election timeout min - --max-clock-drift-ms` from the latest
    /// heartbeat round a majority acknowledged), which assumes no two
    /// nodes' clocks drift apart by more than the drift bound over one
    /// minimum election timeout.
    #[arg(long, value_enum, default_value_t = ReadModeArg::Safe)]
    read_mode: ReadModeArg,
    /// With `--read-mode lease`: the bound on clock drift between nodes over
    /// one minimum election timeout, in milliseconds, below the minimum
    /// election timeout [default: 50].
    #[arg(long, value_name = "MS")]
    max_clock_drift_ms: Option<u64>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// `--max-clock-drift-ms` unless told otherwise: a sixth of the default
/// minimum election timeout.
const DEFAULT_MAX_CLOCK_DRIFT_MS: u64 = 50;

/// `--read-mode`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ReadModeArg {
    Safe,
    Lease,
}

/// `node --heartbeat-ms` unless told otherwise (MIT 6.5840's ~110 ms).
pub(crate) const DEFAULT_HEARTBEAT_MS: u64 = 110;

/// `--watermark`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum WatermarkArg {
    BeforeAck,
    Deferred,
}

impl From<WatermarkArg> for raft_host::Watermark {
    fn from(w: WatermarkArg) -> raft_host::Watermark {
        match w {
            WatermarkArg::BeforeAck => raft_host::Watermark::BeforeAck,
            WatermarkArg::Deferred => raft_host::Watermark::Deferred,
        }
    }
}

/// Client sessions and the leader's backlog.
#[derive(Args, Debug, Clone)]
struct LimitArgs {
    /// A client session with no command for this long expires (log time:
    /// the leader's clock as written into entries), e.g. 1h is 60m.
    #[arg(long, default_value = "60m", value_parser = args::duration)]
    session_timeout: Duration,
    /// Bound on the client session table, in bytes; the sessions idle the
    /// longest expire first when it is reached.
    #[arg(long, default_value_t = raft_host::SessionLimits::DEFAULT.max_bytes, value_parser = args::positive)]
    max_session_bytes: u64,
    /// Most bytes of client commands the leader holds proposed and not yet
    /// applied; beyond it commands are refused with a clear error.
    #[arg(long, default_value = "16777216", value_parser = args::positive)]
    max_uncommitted_bytes: u64,
}

/// How to reach a cluster.
#[derive(Args, Debug, Clone)]
struct ConnArgs {
    /// The nodes' addresses, comma-separated.
    #[arg(long, value_name = "ADDR[,ADDR...]", value_delimiter = ',', required = true, value_parser = args::addr)]
    servers: Vec<SocketAddr>,
    /// File holding the cluster key.
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Give up on a command after this many milliseconds (outcome unknown).
    #[arg(long, default_value = "2000", value_parser = args::positive)]
    timeout_ms: u64,
}

#[derive(Args, Debug, Clone)]
struct StatusArgs {
    /// The nodes' addresses, comma-separated.
    #[arg(long, value_name = "ADDR[,ADDR...]", value_delimiter = ',', required = true, value_parser = args::addr)]
    servers: Vec<SocketAddr>,
    /// File holding the cluster key.
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Wait this many milliseconds for answers.
    #[arg(long, default_value = "1000", value_parser = args::positive)]
    timeout_ms: u64,
}

/// Runs the command line and returns the exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(cli.log_level).with_target(false).init();
    let result = match cli.command {
        Command::Keygen => keygen(),
        Command::Node(a) => node(a),
        Command::Client(c) => kv::client(&c),
        Command::Put { conn, key, value } => kv::one_shot(&conn, raft_host::KvOp::put(key, value)),
        Command::Get { conn, key } => kv::one_shot(&conn, raft_host::KvOp::get(key)),
        Command::Delete { conn, key } => kv::one_shot(&conn, raft_host::KvOp::delete(key)),
        Command::Cas { conn, key, expected, new } => {
            kv::one_shot(&conn, raft_host::KvOp::cas(key, Some(&expected), new))
        }
        Command::Status(s) => status::run(&s),
        Command::Cluster(c) => cluster::run(c, cli.log_level),
        Command::Bench(b) => bench::run(&b),
        Command::BenchFailover(b) => bench_failover::run(&b, cli.log_level),
        Command::TransferLeader(t) => transfer::run(&t),
        Command::Member(m) => member::run(m),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(why) => {
            eprintln!("raft-udp: {why}");
            ExitCode::from(2)
        }
    }
}

/// Help and version go to stdout with status 0; usage errors become one line
/// on stderr with status 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    // clap's message is its first paragraph (a list of missing arguments
    // continues on indented lines); tips and usage follow a blank line.
    let text = e.render().to_string();
    let paragraph: Vec<&str> =
        text.lines().skip_while(|l| l.trim().is_empty()).take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
    let message = paragraph.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("raft-udp: {message} (see raft-udp --help)");
    ExitCode::from(2)
}

fn keygen() -> Result<u8, String> {
    let keys = raft_host::secure::KeyFile::generate(&mut raft_host::secure::OsEntropy).map_err(|e| e.to_string())?;
    print!("{}", keys.format());
    Ok(0)
}

fn node(a: NodeArgs) -> Result<u8, String> {
    let key = crate::keyfile::read_key(&a.key_file)?;
    let mut peers = BTreeMap::new();
    for (id, addr) in &a.peers {
        if peers.insert(*id, *addr).is_some() {
            return Err(format!("--peer lists node {id} twice"));
        }
    }
    let opts = NodeOptions {
        id: a.id,
        listen: a.listen,
        peers,
        data_dir: a.data_dir,
        key,
        heartbeat: Duration::from_millis(a.heartbeat_ms),
        election_timeout: (
            Duration::from_millis(a.election_timeout_ms.0),
            Duration::from_millis(a.election_timeout_ms.1),
        ),
        max_datagram: a.max_datagram,
        join: a.join,
        snapshot_after_entries: a.snapshot_after_entries,
        repair: a.repair,
        metrics_listen: a.metrics_listen,
        watermark: a.watermark.into(),
        read_mode: match (a.read_mode, a.max_clock_drift_ms) {
            (ReadModeArg::Safe, None) => raft_core::ReadMode::Safe,
            (ReadModeArg::Safe, Some(_)) => {
                return Err("--max-clock-drift-ms applies to --read-mode lease only".into());
            }
            (ReadModeArg::Lease, drift) => raft_core::ReadMode::Lease {
                max_clock_drift: raft_core::Duration::from_millis(drift.unwrap_or(DEFAULT_MAX_CLOCK_DRIFT_MS)),
            },
        },
        limits: server::ServiceLimits {
            sessions: raft_host::SessionLimits {
                idle_timeout_ms: a.limits.session_timeout.as_millis() as u64,
                max_bytes: a.limits.max_session_bytes,
            },
            max_uncommitted_bytes: a.limits.max_uncommitted_bytes,
        },
    };
    let stop = stdin_eof(a.exit_on_stdin_eof);
    match server::run(opts, stop) {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("raft-udp: {e}");
            Ok(e.exit_code())
        }
    }
}

/// Completes when standard input ends, if `enabled`; otherwise never.
async fn stdin_eof(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new().name("stdin-watch".into()).spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    match spawned {
        Ok(_) => {
            let _ = rx.await;
            tracing::info!("standard input closed: stopping");
        }
        Err(_) => std::future::pending().await,
    }
}

/// Lines of standard input, read on a thread of their own so that a pending
/// read never holds up the runtime's shutdown. The channel closes at the end
/// of input (or on a read error, which is sent first).
fn stdin_lines() -> tokio::sync::mpsc::Receiver<std::io::Result<String>> {
    use std::io::BufRead;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let _ = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A current-thread runtime for the client-side commands.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}
