//! For the hardening tests (`stress`, `stress_mixed`, `faults`, and the `EMFILE` and
//! many-connection cases elsewhere): the short/full size switch (`IOCORE_STRESS=full`), a
//! seeded PRNG, the process's RSS, `RLIMIT_NOFILE` control, an in-core wait for the fd
//! count, and a runner for a test of this binary in a child process.

use super::{fd_count, settle_in_core};
use std::time::{Duration, Instant};

/// Whether the full (long, large) variants were asked for with `IOCORE_STRESS=full`.
pub fn full() -> bool {
    std::env::var("IOCORE_STRESS").is_ok_and(|v| v == "full")
}

/// `short` by default, `full` under `IOCORE_STRESS=full`.
pub fn pick<T>(short: T, full_size: T) -> T {
    if full() {
        full_size
    } else {
        short
    }
}

/// "short" or "full", for the printed figures.
pub fn variant() -> &'static str {
    if full() {
        "full"
    } else {
        "short"
    }
}

/// The seed of a test's PRNG: `IOCORE_STRESS_SEED` if set, else the clock; printed so a
/// failing run can be replayed (as far as thread timing allows).
pub fn seed(test: &str) -> u64 {
    let s = match std::env::var("IOCORE_STRESS_SEED") {
        Ok(v) => v.parse().expect("IOCORE_STRESS_SEED must be a u64"),
        Err(_) => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        }
    };
    eprintln!("[{test}] seed={s} (replay with IOCORE_STRESS_SEED={s})");
    s
}

/// A small xorshift64* generator: deterministic for a seed, no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// Resident set size of this process in KiB (`/proc/self/statm`).
pub fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("statm rss");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page / 1024
}

fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit with a valid pointer to an rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0, "getrlimit");
    lim
}

/// The current soft `RLIMIT_NOFILE`.
#[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` everywhere
pub fn nofile_soft() -> u64 {
    nofile().rlim_cur as u64
}

/// Raises `RLIMIT_NOFILE` to at least `want` if it can: the soft limit up to the hard one,
/// and the hard one too when privileged. Returns the soft limit in force afterwards.
#[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` everywhere
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = nofile();
    if (lim.rlim_cur as u64) >= want {
        return lim.rlim_cur as u64;
    }
    if (lim.rlim_max as u64) < want {
        let raised = libc::rlimit { rlim_cur: want as libc::rlim_t, rlim_max: want as libc::rlim_t };
        // SAFETY: setrlimit with a valid pointer to an rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return want;
        }
    }
    lim.rlim_cur = lim.rlim_max.min(want as libc::rlim_t);
    // SAFETY: setrlimit with a valid pointer to an rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0, "setrlimit");
    lim.rlim_cur as u64
}

/// Sets the soft `RLIMIT_NOFILE` (capped by the hard limit).
#[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` everywhere
pub fn set_nofile_soft(soft: u64) {
    let mut lim = nofile();
    lim.rlim_cur = (soft as libc::rlim_t).min(lim.rlim_max);
    // SAFETY: setrlimit with a valid pointer to an rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0, "setrlimit");
}

/// Inside a core: waits (iocore sleeps) until the fd count is at most `base`, up to
/// `limit`; returns the last count.
pub async fn fds_back_to(base: usize, limit: Duration) -> usize {
    let mut n = fd_count();
    settle_in_core(limit, || {
        n = fd_count();
        n <= base
    })
    .await;
    n
}

/// Runs the test named `test` of the current test binary again in a child process with
/// `env_var=1` (for process-wide changes such as `RLIMIT_NOFILE`), bounded by `limit`.
/// Returns `(success, stdout, stderr)`.
pub fn run_child(test: &str, env_var: &str, limit: Duration) -> (bool, String, String) {
    run_child_with(test, env_var, "1", limit)
}

/// [`run_child`] with `env_var=value`.
pub fn run_child_with(test: &str, env_var: &str, value: &str, limit: Duration) -> (bool, String, String) {
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env_var, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process for {test} hung (killed after {limit:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), out_t.join().unwrap_or_default(), err_t.join().unwrap_or_default())
}
