//! The idle timeouts of the example servers, as their binaries run them (`echo_server
//! --idle-timeout-secs`, `kv --timeout-secs`): a connection that sends nothing is closed by
//! the server, one that keeps talking is not. Outcomes only, with 10x margins.

use std::io::{Read, Write};
use std::time::Duration;

mod support;

use support::examples::{connected, start, stop_with, wait_exit};

/// Starts `name` with a 0.5 s idle timeout (`args`), keeps one connection idle and another
/// sending `ping` every 50 ms for 1.5 s: the idle one is closed, the active one served.
fn idle_closed_active_served(name: &str, args: &[&str], ping: &[u8], pong: &[u8]) {
    let (child, out, addr) = start(name, args);
    let mut idle = connected(&addr);
    let mut active = connected(&addr);
    let mut got = vec![0u8; pong.len()];
    for _ in 0..31 {
        active.write_all(ping).unwrap();
        active.read_exact(&mut got).unwrap();
        assert_eq!(got, pong);
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).expect("the idle connection is closed (EOF)");
    assert!(rest.is_empty(), "{name}: bytes on the idle connection: {rest:?}");
    active.write_all(ping).unwrap();
    active.read_exact(&mut got).unwrap();
    assert_eq!(got, pong, "{name}: the active connection still works");
    stop_with(&child, libc::SIGTERM);
    let (status, stdout) = wait_exit(child, out);
    assert!(status.success(), "{name}: exit status {status}; stdout: {stdout}");
}

#[test]
fn echo_server_closes_idle_connections() {
    idle_closed_active_served("echo_server", &["0", "--idle-timeout-secs", "0.5"], b"ping\n", b"ping\n");
}

#[test]
fn kv_closes_idle_connections() {
    idle_closed_active_served(
        "kv",
        &["--port", "0", "--threads", "1", "--timeout-secs", "0.5"],
        b"PING\r\n",
        b"+PONG\r\n",
    );
}
