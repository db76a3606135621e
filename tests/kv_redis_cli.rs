//! The kv example served on iocore, driven by the real `redis-cli` (Debian `redis-tools`,
//! installed by `.ci/run`), plus malformed input over a raw socket.

#[path = "../examples/shared/log_limit.rs"]
mod log_limit;
#[path = "../examples/kv/resp.rs"]
#[allow(dead_code)]
mod resp;
#[path = "../examples/kv/server.rs"]
#[allow(dead_code)]
mod server;

use iocore::net::{TcpListener, TcpStream};
use iocore::IoCore;
use std::process::Command;
use std::time::Duration;

fn start() -> (IoCore, u16) {
    let core = IoCore::builder().threads(2).build().unwrap();
    let listener = core.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(core.spawn(server::serve(listener, server::Server::new(server::Config::default()))));
    (core, port)
}

fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output().ok()?;
    assert!(out.status.success(), "redis-cli {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

#[test]
fn redis_cli_talks_to_the_server() {
    let (_core, port) = start();
    let Some(pong) = cli(port, &["PING"]) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-cli is missing on CI: .ci/run must install redis-tools"
        );
        eprintln!("SKIPPED: redis-cli is not installed (apt-get install redis-tools)");
        return;
    };
    assert_eq!(pong, "PONG");
    assert_eq!(cli(port, &["SET", "greeting", "hello world"]).unwrap(), "OK");
    assert_eq!(cli(port, &["GET", "greeting"]).unwrap(), "hello world");
    assert_eq!(cli(port, &["ECHO", "echo me"]).unwrap(), "echo me");
    assert_eq!(cli(port, &["INCR", "counter"]).unwrap(), "1");
    assert_eq!(cli(port, &["INCR", "counter"]).unwrap(), "2");
    assert_eq!(cli(port, &["EXISTS", "greeting", "counter", "missing"]).unwrap(), "2");
    assert_eq!(cli(port, &["DEL", "greeting"]).unwrap(), "1");
    assert_eq!(cli(port, &["GET", "greeting"]).unwrap(), "");
    // Pipelined: redis-cli --pipe sends everything at once and counts the replies.
    let mut input = String::new();
    for i in 0..1000 {
        input.push_str(&format!("*3\r\n$3\r\nSET\r\n${}\r\nk{i}\r\n$1\r\nv\r\n", format!("k{i}").len()));
    }
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 1000"), "{text}");
}

#[test]
fn malformed_resp_gets_an_error_reply_and_a_close_and_the_server_keeps_serving() {
    let (core, port) = start();
    core.block_on(async {
        iocore::time::timeout(Duration::from_secs(20), async {
            for bad in [&b"*2\r\n$3\r\nGET\r\n!!\r\n"[..], b"*1\r\n$99999999999\r\n", b"*-\r\n"] {
                let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                s.send_all(bad).await.unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 256];
                loop {
                    match s.recv(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                assert!(got.starts_with(b"-ERR Protocol error"), "{:?}", String::from_utf8_lossy(&got));
            }
            // A good client still works, with pipelining.
            let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.send_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nz\r\nPING\r\n").await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while got.len() < b"+PONG\r\n$-1\r\n+PONG\r\n".len() {
                let n = s.recv(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"+PONG\r\n$-1\r\n+PONG\r\n");
        })
        .await
        .expect("timed out")
    });
}
