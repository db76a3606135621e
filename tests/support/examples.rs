//! The example binaries as child processes (`target/<profile>/examples/<name>`, built by
//! `cargo test` next to the tests): start one, read the address it prints, signal it, wait
//! for its exit.

use super::HANG;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/examples/<name>`, built by `cargo test` with the tests.
pub fn example(name: &str) -> PathBuf {
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
pub fn start(name: &str, args: &[&str]) -> (Child, BufReader<ChildStdout>, String) {
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

/// Sends signal `signum` to `child`.
pub fn stop_with(child: &Child, signum: i32) {
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signum) }, 0);
}

/// Waits for the child to exit; its exit status and the rest of its stdout.
pub fn wait_exit(mut child: Child, mut out: BufReader<ChildStdout>) -> (std::process::ExitStatus, String) {
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

/// A blocking client of `addr` whose reads give up after [`HANG`].
pub fn connected(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    s
}
