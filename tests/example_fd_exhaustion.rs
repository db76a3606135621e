//! An example server out of file descriptors (`echo_server` under a 32-fd limit, 60
//! clients): accept errors are logged at most once a second with a count (not once per
//! attempt), the server keeps serving the connections it has, and recovers once fds are
//! freed. Counts and outcomes only.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

use support::examples::{connected, example, stop_with, wait_exit};

#[test]
fn echo_server_out_of_fds_logs_rate_limited_and_recovers() {
    let mut cmd = Command::new(example("echo_server"));
    cmd.args(["0"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: only async-signal-safe work between fork and exec: one setrlimit call.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 32, rlim_max: 32 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start echo_server");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let at = line.find("127.0.0.1:").unwrap_or_else(|| panic!("echo_server printed {line:?}"));
    let addr: String = line[at..].chars().take_while(|c| !c.is_whitespace()).collect();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let sink = errors.clone();
    let reader = std::thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });

    // More clients than the server has fds: the first ones are served, the rest wait in the
    // backlog while the server's accepts fail.
    let mut clients: Vec<_> = (0..60).map(|_| connected(&addr)).collect();
    let mut got = [0u8; 3];
    clients[0].write_all(b"hi\n").unwrap();
    clients[0].read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hi\n", "a connection accepted before the limit is served");
    std::thread::sleep(Duration::from_secs(2));
    let lines: Vec<String> = errors.lock().unwrap().clone();
    let accept_lines = lines.iter().filter(|l| l.starts_with("accept")).count();
    eprintln!("[fd-exhaustion] {accept_lines} accept log lines in 2 s: {lines:?}");
    assert!(accept_lines >= 1, "no accept error was logged: {lines:?}");
    // Once a second (plus the first): a line per attempt would be dozens.
    assert!(accept_lines <= 4, "{accept_lines} accept log lines in 2 s: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("Too many open files")), "{lines:?}");

    // Free the fds: the waiting clients are accepted (and see EOF once they close), and a
    // new client is served.
    drop(clients);
    let mut fresh = connected(&addr);
    fresh.write_all(b"ok\n").unwrap();
    fresh.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ok\n", "a new client is served once fds are free");
    drop(fresh);
    stop_with(&child, libc::SIGTERM);
    let (status, _) = wait_exit(child, out);
    assert!(status.success(), "exit status {status}");
    reader.join().unwrap();
}
