//! The example servers stop gracefully on SIGTERM and SIGINT: they stop accepting, finish
//! what is in flight, close their connections and exit 0. Each runs as a child process
//! (the example binaries `cargo test` builds next to this test).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::HANG;

/// `target/<profile>/examples/<name>`, built by `cargo test` with the tests.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target directory");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test` (it builds the examples)",
        path.display()
    );
    path
}

/// Starts `name` with `args`; returns the child, its stdout, and the address it printed
/// (the first `127.0.0.1:PORT` on its first line).
fn start(name: &str, args: &[&str]) -> (Child, BufReader<ChildStdout>, String) {
    let mut child = Command::new(example(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let start = line.find("127.0.0.1:").unwrap_or_else(|| panic!("{name} printed {line:?}"));
    let addr: String = line[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    (child, out, addr)
}

fn stop_with(child: &Child, signum: i32) {
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signum) }, 0);
}

/// Waits for the child to exit; its exit status and the rest of its stdout.
fn wait_exit(mut child: Child, mut out: BufReader<ChildStdout>) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + HANG;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut rest = String::new();
            out.read_to_string(&mut rest).unwrap();
            return (status, rest);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit within {HANG:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn connected(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    s
}

fn graceful_echo_server(signum: i32) {
    let (child, out, addr) = start("echo_server", &["0"]);
    let mut idle = connected(&addr);
    let mut busy = connected(&addr);
    busy.write_all(b"in flight").unwrap();
    let mut buf = [0u8; 9];
    busy.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"in flight");
    stop_with(&child, signum);
    // Every connection is closed by the server (EOF), idle or not.
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    busy.read_to_end(&mut rest).unwrap();
    let (status, stdout) = wait_exit(child, out);
    assert!(status.success(), "exit status {status}; stdout: {stdout}");
    assert!(stdout.contains("stopped: 2 connections served, 0 cut"), "stdout: {stdout}");
    // Nobody listens any more.
    assert!(TcpStream::connect(&addr).is_err(), "still accepting after the stop");
}

#[test]
fn echo_server_stops_gracefully_on_sigterm() {
    graceful_echo_server(libc::SIGTERM);
}

#[test]
fn echo_server_stops_gracefully_on_sigint() {
    graceful_echo_server(libc::SIGINT);
}

#[test]
fn kv_server_answers_what_it_read_then_stops_on_sigterm() {
    let (child, out, addr) = start("kv", &["--port", "0", "--threads", "1"]);
    let mut client = connected(&addr);
    client.write_all(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n").unwrap();
    let mut buf = [0u8; 12];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n+OK\r\n");
    stop_with(&child, libc::SIGTERM);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "unexpected bytes after the stop: {rest:?}");
    let (status, stdout) = wait_exit(child, out);
    assert!(status.success(), "exit status {status}; stdout: {stdout}");
    assert!(stdout.contains("stopped: 0 connections cut"), "stdout: {stdout}");
}

/// The http example needs the `tokio` feature (`cargo test --all-features` builds it).
#[cfg(feature = "tokio")]
#[test]
fn http_server_finishes_a_request_then_stops_on_sigterm() {
    let (child, out, addr) = start("http", &["--port", "0", "--threads", "1"]);
    let mut client = connected(&addr);
    client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("Hello, World!"), "{response}");
    stop_with(&child, libc::SIGTERM);
    let (status, stdout) = wait_exit(child, out);
    assert!(status.success(), "exit status {status}; stdout: {stdout}");
    assert!(stdout.contains("stopped:"), "stdout: {stdout}");
}
