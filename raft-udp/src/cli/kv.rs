//! Key-value commands: the `client` line protocol and the one-shot commands.

use super::ConnArgs;
use crate::client::{Client, CommandOutcome};
use raft_host::{KvOp, KvOutput};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::time::Duration;

/// Parses one input line: `put KEY VALUE`, `get KEY`, `delete KEY`,
/// `cas KEY EXPECTED NEW`. `Ok(None)` for a blank line; on error, the JSON
/// line to print.
pub(crate) fn parse_line(line: &str) -> Result<Option<KvOp>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let op = match words.as_slice() {
        [] => return Ok(None),
        ["put", k, v] => KvOp::put(*k, *v),
        ["get", k] => KvOp::get(*k),
        ["delete", k] => KvOp::delete(*k),
        ["cas", k, expected, new] => KvOp::cas(*k, Some(expected), *new),
        [cmd, rest @ ..] => {
            let usage = match *cmd {
                "put" => "usage: put KEY VALUE",
                "get" => "usage: get KEY",
                "delete" => "usage: delete KEY",
                "cas" => "usage: cas KEY EXPECTED NEW",
                _ => "unknown command (use put, get, delete or cas)",
            };
            let mut m = Map::new();
            m.insert("op".into(), json!(cmd));
            m.insert("key".into(), rest.first().map_or(Value::Null, |k| json!(k)));
            m.insert("ok".into(), json!(false));
            m.insert("error".into(), json!(usage));
            return Err(Value::Object(m).to_string());
        }
    };
    Ok(Some(op))
}

fn op_name(op: &KvOp) -> &'static str {
    match op {
        KvOp::Put { .. } => "put",
        KvOp::Get { .. } => "get",
        KvOp::Delete { .. } => "delete",
        _ => "cas",
    }
}

/// The JSON line for a command's outcome.
pub(crate) fn json_line(op: &KvOp, outcome: &CommandOutcome) -> String {
    let mut m = Map::new();
    m.insert("op".into(), json!(op_name(op)));
    m.insert("key".into(), json!(op.key()));
    match outcome {
        CommandOutcome::Ok(output) => {
            m.insert("ok".into(), json!(true));
            match output {
                KvOutput::Get(v) => {
                    m.insert("value".into(), json!(v));
                }
                KvOutput::Delete { existed } => {
                    m.insert("existed".into(), json!(existed));
                }
                KvOutput::Cas { swapped, current } => {
                    m.insert("swapped".into(), json!(swapped));
                    m.insert("value".into(), json!(current));
                }
                _ => {}
            }
        }
        CommandOutcome::Failed(why) => {
            m.insert("ok".into(), json!(false));
            m.insert("error".into(), json!(why));
        }
        CommandOutcome::Unknown => {
            m.insert("ok".into(), json!(false));
            m.insert("error".into(), json!("timeout"));
        }
    }
    Value::Object(m).to_string()
}

/// 0 ok, 1 definitely failed, 2 unknown.
pub(crate) fn exit_code(outcome: &CommandOutcome) -> u8 {
    match outcome {
        CommandOutcome::Ok(_) => 0,
        CommandOutcome::Failed(_) => 1,
        CommandOutcome::Unknown => 2,
    }
}

pub(crate) fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn connect(conn: &ConnArgs) -> Result<Client, String> {
    let key = crate::keyfile::read_key(&conn.key_file)?.key;
    Client::connect(conn.servers.clone(), key, Duration::from_millis(conn.timeout_ms))
        .await
        .map_err(|e| format!("cannot open a client socket: {e}"))
}

/// `raft-udp put|get|delete|cas`.
pub(super) fn one_shot(conn: &ConnArgs, op: KvOp) -> Result<u8, String> {
    super::runtime()?.block_on(async {
        let mut client = connect(conn).await?;
        let outcome = client.execute(op.clone()).await;
        print_line(&json_line(&op, &outcome));
        Ok(exit_code(&outcome))
    })
}

/// `raft-udp client`: one command per input line, in order.
pub(super) fn client(conn: &ConnArgs) -> Result<u8, String> {
    super::runtime()?.block_on(async {
        let mut client = connect(conn).await?;
        let mut lines = super::stdin_lines();
        while let Some(line) = lines.recv().await {
            let line = line.map_err(|e| format!("cannot read standard input: {e}"))?;
            match parse_line(&line) {
                Ok(None) => {}
                Ok(Some(op)) => {
                    let outcome = client.execute(op.clone()).await;
                    print_line(&json_line(&op, &outcome));
                }
                Err(json) => print_line(&json),
            }
        }
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_json() {
        assert_eq!(parse_line("  "), Ok(None));
        assert_eq!(parse_line("put a 1"), Ok(Some(KvOp::put("a", "1"))));
        assert_eq!(parse_line("cas a 1 2"), Ok(Some(KvOp::cas("a", Some("1"), "2"))));
        assert_eq!(
            parse_line("put a").unwrap_err(),
            r#"{"op":"put","key":"a","ok":false,"error":"usage: put KEY VALUE"}"#
        );
        assert!(parse_line("frob").unwrap_err().contains(r#""key":null"#));
        let get = KvOp::get("k");
        assert_eq!(
            json_line(&get, &CommandOutcome::Ok(KvOutput::get(None))),
            r#"{"op":"get","key":"k","ok":true,"value":null}"#
        );
        assert_eq!(
            json_line(&KvOp::cas("k", Some("a"), "b"), &CommandOutcome::Ok(KvOutput::cas(false, Some("c")))),
            r#"{"op":"cas","key":"k","ok":true,"swapped":false,"value":"c"}"#
        );
        assert_eq!(
            json_line(&KvOp::delete("k"), &CommandOutcome::Ok(KvOutput::delete(true))),
            r#"{"op":"delete","key":"k","ok":true,"existed":true}"#
        );
        assert_eq!(
            json_line(&KvOp::put("k", "v"), &CommandOutcome::Ok(KvOutput::Put)),
            r#"{"op":"put","key":"k","ok":true}"#
        );
        assert_eq!(json_line(&get, &CommandOutcome::Unknown), r#"{"op":"get","key":"k","ok":false,"error":"timeout"}"#);
        assert_eq!(exit_code(&CommandOutcome::Failed("x".into())), 1);
    }
}
