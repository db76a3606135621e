//! The example servers stop gracefully on SIGTERM and SIGINT: they stop accepting, finish
//! what is in flight, close their connections and exit 0. Each runs as a child process
//! (the example binaries `cargo test` builds next to this test).

use std::io::{Read, Write};
use std::net::TcpStream;

mod support;

use support::examples::{connected, start, stop_with, wait_exit};

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
