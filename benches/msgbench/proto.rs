//! The message benchmark's wire format (see `benches/PROTOCOL.md`), runtime-independent:
//! every server and client implementation uses exactly this code per message.

use std::fmt;

/// Largest accepted `body_len`.
pub const MAX_BODY: u64 = 64 << 20;
const PATTERN: [u8; 4] = [0xEF, 0xBE, 0xAD, 0xDE];

/// One decoded message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msg {
    pub timestamp_ms: u64,
    pub int_count: u32,
    pub int_value: u32,
    pub payload_len: u64,
}

/// Why a byte stream is not a valid message stream.
#[derive(Debug)]
pub enum DecodeError {
    /// Inconsistent or oversized header: close the connection, count it, keep serving.
    Protocol(String),
    /// Well-framed but wrong content (ints differ, payload corrupt): a hard failure.
    Invalid(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Protocol(m) => write!(f, "protocol error: {m}"),
            DecodeError::Invalid(m) => write!(f, "invalid message: {m}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends the frame of `msg` to `out` (the payload is written from the pattern).
pub fn encode(msg: &Msg, out: &mut Vec<u8>) {
    let n = msg.int_count as usize;
    let body = 20 + 4 * n as u64 + msg.payload_len;
    out.reserve(8 + body as usize);
    out.extend_from_slice(&body.to_le_bytes());
    out.extend_from_slice(&msg.timestamp_ms.to_le_bytes());
    out.extend_from_slice(&msg.int_count.to_le_bytes());
    let int = msg.int_value.to_le_bytes();
    for _ in 0..n {
        out.extend_from_slice(&int);
    }
    out.extend_from_slice(&msg.payload_len.to_le_bytes());
    let p = msg.payload_len as usize;
    let start = out.len();
    out.resize(start + p, 0);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b = PATTERN[i & 3];
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Decodes every complete frame at the start of `buf`, validating each, and calls `f` for
/// it. Returns the number of bytes consumed (partial frames stay for the next read).
pub fn decode(buf: &[u8], mut f: impl FnMut(Msg)) -> Result<usize, DecodeError> {
    let mut off = 0;
    while buf.len() - off >= 8 {
        let body = u64_at(buf, off);
        if body > MAX_BODY {
            return Err(DecodeError::Protocol(format!("body_len {body} exceeds {MAX_BODY}")));
        }
        if body < 20 {
            return Err(DecodeError::Protocol(format!("body_len {body} is shorter than a header")));
        }
        if ((buf.len() - off - 8) as u64) < body {
            break;
        }
        let frame = &buf[off + 8..off + 8 + body as usize];
        let timestamp_ms = u64_at(frame, 0);
        let n = u32_at(frame, 8) as u64;
        if 20 + 4 * n > body {
            return Err(DecodeError::Protocol(format!("int_count {n} does not fit body_len {body}")));
        }
        let ints = &frame[12..12 + 4 * n as usize];
        let int_value = if n > 0 { u32_at(ints, 0) } else { 0 };
        if ints.chunks_exact(4).any(|c| c != int_value.to_le_bytes()) {
            return Err(DecodeError::Invalid("ints differ from the first".into()));
        }
        let p_at = 12 + 4 * n as usize;
        let p = u64_at(frame, p_at);
        if 20 + 4 * n + p != body {
            return Err(DecodeError::Protocol(format!("body_len {body} != 20 + 4*{n} + {p}")));
        }
        let payload = &frame[p_at + 8..];
        let mut chunks = payload.chunks_exact(4);
        if chunks.any(|c| c != PATTERN) || chunks.remainder() != &PATTERN[..chunks.remainder().len()] {
            return Err(DecodeError::Invalid("payload does not match the pattern".into()));
        }
        f(Msg { timestamp_ms, int_count: n as u32, int_value, payload_len: p });
        off += 8 + body as usize;
    }
    Ok(off)
}

/// A receive buffer with the read size of the protocol: frames are decoded in place and
/// partial frames are kept for the next read.
pub struct RecvBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    read_size: usize,
}

impl RecvBuf {
    pub fn new(read_size: usize) -> RecvBuf {
        RecvBuf { buf: vec![0; read_size * 2], start: 0, end: 0, read_size }
    }

    /// Space for the next read (at most `read_size` bytes).
    pub fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < self.read_size {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < self.read_size {
                self.buf.resize(self.end + self.read_size, 0);
            }
        }
        &mut self.buf[self.end..self.end + self.read_size]
    }

    /// `n` bytes were read into `space()`: decode the complete frames.
    pub fn filled(&mut self, n: usize, f: impl FnMut(Msg)) -> Result<(), DecodeError> {
        self.end += n;
        let used = decode(&self.buf[self.start..self.end], f)?;
        self.start += used;
        Ok(())
    }
}

/// The int of a hog message (the hog scenario): a message with exactly one int, of this
/// value, costs a server started with `--hog-burn-us` that much CPU time before its reply.
/// The scenario's other connections send no ints, so they can never look like the hog.
pub const HOG_MARK: u32 = 0x4855_4E47;

/// Computes for `d` of CPU time (work the scheduler cannot see, unlike a sleep): a fixed
/// amount of arithmetic, calibrated once against the thread's CPU clock. Not a spin on the
/// wall clock: a thread the kernel preempts meanwhile must still do all of its work, so
/// that every runtime's hog costs the same CPU.
fn burn(d: std::time::Duration) {
    static PER_MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let per_ms = *PER_MS.get_or_init(|| {
        // The fastest of a few tries: CPU time counts no preemption, but a cold cache.
        let n = 1 << 20;
        let best = (0..5).map(|_| {
            let t0 = thread_cpu_time();
            spin(n);
            thread_cpu_time() - t0
        });
        let best = best.min().expect("tries").max(std::time::Duration::from_micros(1));
        (n as f64 / (best.as_secs_f64() * 1e3)) as u64
    });
    spin((per_ms as f64 * d.as_secs_f64() * 1e3) as u64);
}

/// `n` steps of arithmetic the compiler cannot drop.
fn spin(n: u64) {
    let mut x = std::hint::black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..n {
        x = std::hint::black_box(
            x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407),
        );
    }
    std::hint::black_box(x);
}

/// The calling thread's CPU time.
fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The server's per-read work: decode what arrived, encode every reply into one buffer.
pub struct ServerConn {
    pub recv: RecvBuf,
    pub out: Vec<u8>,
    /// CPU time per hog message (zero: hog marks are ordinary messages).
    hog_burn: std::time::Duration,
}

impl ServerConn {
    pub fn new(read_size: usize, hog_burn: std::time::Duration) -> ServerConn {
        ServerConn { recv: RecvBuf::new(read_size), out: Vec::with_capacity(read_size), hog_burn }
    }

    /// After a read of `n` bytes: the replies to send (all in one send), maybe empty.
    pub fn on_read(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        self.out.clear();
        let (out, hog_burn) = (&mut self.out, self.hog_burn);
        self.recv.filled(n, |m| {
            if !hog_burn.is_zero() && m.int_count == 1 && m.int_value == HOG_MARK {
                burn(hog_burn);
            }
            encode(&m, out)
        })?;
        Ok(&self.out)
    }
}

// A harness = false target has no test runner: `cargo test` never runs this, and
// `cargo clippy --all-targets` compiles this module with its #[test] function left out (so
// everything the test uses stays inside it).
#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_errors() {
        use super::*;
        let frame_len = |int_count: u32, payload_len: u64| 28 + 4 * int_count as usize + payload_len as usize;
        let m = Msg { timestamp_ms: 7, int_count: 5, int_value: 0xabcd, payload_len: 131 };
        let mut b = Vec::new();
        encode(&m, &mut b);
        encode(&m, &mut b);
        assert_eq!(b.len(), 2 * frame_len(5, 131));
        let mut got = vec![];
        assert_eq!(decode(&b[..b.len() - 1], |x| got.push(x)).unwrap(), frame_len(5, 131));
        assert_eq!(got, vec![m]);
        b[30] ^= 1;
        assert!(matches!(decode(&b, |_| {}), Err(DecodeError::Invalid(_))));
        let mut bad = Vec::new();
        bad.extend_from_slice(&(MAX_BODY + 1).to_le_bytes());
        assert!(matches!(decode(&bad, |_| {}), Err(DecodeError::Protocol(_))));
    }
}
