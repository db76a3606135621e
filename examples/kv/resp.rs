//! A RESP2 subset: command parsing (arrays of bulk strings, and inline commands) and a
//! sharded in-memory store that executes PING, ECHO, SET, GET, DEL, INCR and EXISTS.
//! Runtime-independent: the iocore and tokio servers share all of it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// Largest bulk string accepted (like Redis's proto-max-bulk-len, but smaller).
pub const MAX_BULK: usize = 64 << 20;
/// Most arguments in one command.
pub const MAX_ARGS: usize = 1 << 20;
/// Longest inline command line.
pub const MAX_INLINE: usize = 64 << 10;

/// A protocol error: the server replies `-ERR Protocol error: …` and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?.windows(2).position(|w| w == b"\r\n").map(|p| from + p)
}

fn parse_int(bytes: &[u8], what: &str) -> Result<i64, ProtocolError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ProtocolError(format!("invalid {what} {:?}", String::from_utf8_lossy(bytes))))
}

/// A parsed command's arguments and the bytes it used; `None` while incomplete.
pub type Parsed<'a> = Option<(Vec<&'a [u8]>, usize)>;

/// Parses one command at the start of `buf`: `Ok(None)` if it is incomplete, else the
/// arguments and the number of bytes consumed.
pub fn parse(buf: &[u8]) -> Result<Parsed<'_>, ProtocolError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    if first != b'*' {
        return parse_inline(buf);
    }
    let Some(end) = find_crlf(buf, 1) else {
        return if buf.len() > MAX_INLINE {
            Err(ProtocolError("array header too long".into()))
        } else {
            Ok(None)
        };
    };
    let n = parse_int(&buf[1..end], "multibulk length")?;
    if n <= 0 {
        return Ok(Some((Vec::new(), end + 2)));
    }
    if n as usize > MAX_ARGS {
        return Err(ProtocolError(format!("multibulk length {n} too large")));
    }
    let mut pos = end + 2;
    let mut args = Vec::with_capacity(n as usize);
    for _ in 0..n {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&c) => return Err(ProtocolError(format!("expected '$', got {:?}", c as char))),
        }
        let Some(end) = find_crlf(buf, pos + 1) else {
            return if buf.len() - pos > 32 {
                Err(ProtocolError("bulk header too long".into()))
            } else {
                Ok(None)
            };
        };
        let len = parse_int(&buf[pos + 1..end], "bulk length")?;
        if len < 0 || len as usize > MAX_BULK {
            return Err(ProtocolError(format!("invalid bulk length {len}")));
        }
        let start = end + 2;
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Ok(None);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(ProtocolError("bulk string not terminated by CRLF".into()));
        }
        args.push(&buf[start..stop]);
        pos = stop + 2;
    }
    Ok(Some((args, pos)))
}

fn parse_inline(buf: &[u8]) -> Result<Parsed<'_>, ProtocolError> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_INLINE {
            Err(ProtocolError("inline command too long".into()))
        } else {
            Ok(None)
        };
    };
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let args = line.split(|b| *b == b' ').filter(|a| !a.is_empty()).collect();
    Ok(Some((args, end + 1)))
}

/// Encodes a command as a RESP array of bulk strings (what clients send).
#[allow(dead_code)] // for clients and tests; the server only parses
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The store: a fixed number of shards, each a mutex-protected map.
pub struct Store {
    shards: Vec<Mutex<HashMap<Vec<u8>, Vec<u8>>>>,
}

impl Default for Store {
    fn default() -> Self {
        Store { shards: (0..64).map(|_| Mutex::default()).collect() }
    }
}

impl Store {
    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Vec<u8>>> {
        // FNV-1a: cheap and good enough to spread keys.
        let h = key.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3));
        self.shards[h as usize % self.shards.len()].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Executes one command, appending its reply to `out`.
    pub fn execute(&self, args: &[&[u8]], out: &mut Vec<u8>) {
        let Some(name) = args.first() else { return };
        let name = name.to_ascii_uppercase();
        let argc = args.len();
        let wrong_args = |out: &mut Vec<u8>| {
            let cmd = String::from_utf8_lossy(&name).to_lowercase();
            out.extend_from_slice(
                format!("-ERR wrong number of arguments for '{cmd}' command\r\n").as_bytes(),
            );
        };
        match &name[..] {
            b"PING" if argc == 1 => out.extend_from_slice(b"+PONG\r\n"),
            b"PING" | b"ECHO" if argc == 2 => bulk(out, Some(args[1])),
            b"SET" if argc == 3 => {
                self.shard(args[1]).insert(args[1].to_vec(), args[2].to_vec());
                out.extend_from_slice(b"+OK\r\n");
            }
            b"GET" if argc == 2 => bulk(out, self.shard(args[1]).get(args[1]).map(|v| &v[..])),
            b"DEL" | b"EXISTS" if argc >= 2 => {
                let del = &name[..] == b"DEL";
                let n = args[1..]
                    .iter()
                    .filter(|k| {
                        let mut s = self.shard(k);
                        if del {
                            s.remove(**k).is_some()
                        } else {
                            s.contains_key(**k)
                        }
                    })
                    .count();
                integer(out, n as i64);
            }
            b"INCR" if argc == 2 => {
                let mut s = self.shard(args[1]);
                let cur = match s.get(args[1]) {
                    None => Some(0),
                    Some(v) => std::str::from_utf8(v).ok().and_then(|v| v.parse::<i64>().ok()),
                };
                match cur.and_then(|c| c.checked_add(1)) {
                    Some(n) => {
                        s.insert(args[1].to_vec(), n.to_string().into_bytes());
                        integer(out, n);
                    }
                    None => out.extend_from_slice(b"-ERR value is not an integer or out of range\r\n"),
                }
            }
            b"PING" | b"ECHO" | b"SET" | b"GET" | b"DEL" | b"EXISTS" | b"INCR" => wrong_args(out),
            b"COMMAND" | b"CONFIG" | b"CLIENT" | b"HELLO" => out.extend_from_slice(b"*0\r\n"),
            _ => {
                let cmd = String::from_utf8_lossy(&name);
                out.extend_from_slice(format!("-ERR unknown command '{cmd}'\r\n").as_bytes());
            }
        }
    }
}

fn bulk(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => out.extend_from_slice(b"$-1\r\n"),
        Some(v) => {
            out.extend_from_slice(format!("${}\r\n", v.len()).as_bytes());
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
    }
}

fn integer(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(format!(":{n}\r\n").as_bytes());
}

/// Reply bytes produced before they are handed to the transport: the replies of one read
/// go out in batches of about this size (one reply may make a batch larger).
pub const REPLY_BATCH: usize = 64 << 10;

/// Where [`Conn::process`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every complete command was executed; more input is needed.
    NeedInput,
    /// `out` holds at least [`REPLY_BATCH`] bytes: send them, then call `process` again.
    OutputFull,
}

/// Per-connection state: buffered input and the replies not yet handed over.
#[derive(Default)]
pub struct Conn {
    /// Received bytes not yet executed.
    pub input: Vec<u8>,
    /// Replies produced and not yet sent.
    pub out: Vec<u8>,
}

impl Conn {
    /// Executes the complete commands in `input` (pipelining), appending replies to `out`,
    /// until the input holds no complete command or `out` reaches [`REPLY_BATCH`] bytes.
    /// On a protocol error the error reply is in `out` and the connection must close.
    pub fn process(&mut self, store: &Store) -> Result<Status, ProtocolError> {
        let mut pos = 0;
        let result = loop {
            if self.out.len() >= REPLY_BATCH {
                break Ok(Status::OutputFull);
            }
            match parse(&self.input[pos..]) {
                Ok(Some((args, used))) => {
                    store.execute(&args, &mut self.out);
                    pos += used;
                }
                Ok(None) => break Ok(Status::NeedInput),
                Err(e) => {
                    self.out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes());
                    break Err(e);
                }
            }
        };
        self.input.drain(..pos);
        result
    }
}
