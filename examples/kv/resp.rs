//! A RESP2 subset: command parsing (arrays of bulk strings, and inline commands) and a
//! sharded in-memory store that executes PING, ECHO, SET, GET, DEL, INCR and EXISTS.
//! Runtime-independent: the iocore and tokio servers share all of it.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Mutex;

/// Longest inline command line, and longest array header line.
pub const MAX_INLINE: usize = 64 << 10;
/// Longest bulk string header line (`$` and a length).
const MAX_BULK_HEADER: usize = 32;
/// The input buffer capacity a connection keeps while idle: a larger one (grown for a big
/// command) is given back once the buffer is empty.
pub const IDLE_CAPACITY: usize = 16 << 10;
/// Argument slots a connection keeps while idle.
const IDLE_ARGS: usize = 1024;

/// The protocol limits of a connection; breaking one is a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string (one argument) in bytes, like Redis's `proto-max-bulk-len`.
    pub max_bulk: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Largest query buffer in bytes: the input of one incomplete command (like Redis's
    /// `client-query-buffer-limit`). Should exceed `max_bulk`.
    pub max_query: usize,
}

impl Limits {
    /// 64 MiB bulk strings, 1 Mi (1,048,576) arguments, a 128 MiB query buffer.
    pub const DEFAULT: Limits = Limits { max_bulk: 64 << 20, max_args: 1 << 20, max_query: 128 << 20 };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// A protocol error: the server replies `-ERR Protocol error: …` and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

fn parse_int(bytes: &[u8], what: &str) -> Result<i64, ProtocolError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ProtocolError(format!("invalid {what} {:?}", String::from_utf8_lossy(bytes))))
}

/// Where the parser stands in the command it is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a command's first byte (or right after a complete command).
    Start,
    /// In an inline command: a line of space-separated words.
    Inline,
    /// In an array header, after its `*`.
    ArrayLen,
    /// Before the next bulk string's `$`, or at the end of the command.
    BulkStart,
    /// In a bulk string header, after its `$`.
    BulkLen,
    /// Before the end of the body of a bulk string of this length.
    Body(usize),
}

/// An incremental RESP parser over a buffer of its own: [`feed`](Self::feed) appends what
/// was received and [`next`](Self::next) resumes where the previous call stopped, so a
/// command that arrives in many reads is examined once, not again from its start on every
/// read.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    buf: Vec<u8>,
    /// Where the current command starts in `buf`.
    start: usize,
    /// The next byte to parse.
    pos: usize,
    /// How far the current line has been searched for its end.
    scanned: usize,
    state: State,
    /// The number of arguments the array header announced.
    expected: usize,
    /// The current command's arguments, as ranges relative to `start`.
    args: Vec<Range<usize>>,
    /// Bytes looked at so far.
    examined: u64,
}

impl Parser {
    /// An empty parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Parser {
            limits,
            buf: Vec::new(),
            start: 0,
            pos: 0,
            scanned: 0,
            state: State::Start,
            expected: 0,
            args: Vec::new(),
            examined: 0,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes the parser has looked at (searching line ends, splitting inline commands,
    /// checking terminators; bulk string bodies are sliced, not read). Each received byte
    /// is looked at a bounded number of times, however the input was split into reads.
    #[allow(dead_code)] // a counter for tests
    pub fn examined(&self) -> u64 {
        self.examined
    }

    /// Bytes buffered and not yet dropped by [`compact`](Self::compact).
    #[allow(dead_code)] // a counter for tests
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The input buffer's capacity.
    #[allow(dead_code)] // a counter for tests
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The next complete command's arguments: `Ok(None)` while it is incomplete.
    pub fn next(&mut self) -> Result<Option<Vec<&[u8]>>, ProtocolError> {
        if !self.advance()? {
            let pending = self.buf.len() - self.start;
            if pending > self.limits.max_query {
                return Err(ProtocolError(format!(
                    "query buffer of {pending} bytes exceeds the limit of {} bytes (--max-query-bytes)",
                    self.limits.max_query
                )));
            }
            return Ok(None);
        }
        let (buf, base) = (&self.buf, self.start);
        Ok(Some(self.args.iter().map(|r| &buf[base + r.start..base + r.end]).collect()))
    }

    /// Drops the bytes of the commands returned so far; when nothing is left, gives back
    /// the memory a big command made the buffers grow to.
    pub fn compact(&mut self) {
        let done = if self.state == State::Start { self.pos } else { self.start };
        if done > 0 {
            self.buf.drain(..done);
            self.pos -= done;
            self.start = self.start.saturating_sub(done);
            self.scanned = self.scanned.saturating_sub(done);
        }
        if self.buf.is_empty() && self.state == State::Start {
            self.buf.shrink_to(IDLE_CAPACITY);
            self.args.clear();
            self.args.shrink_to(IDLE_ARGS);
        }
    }

    /// Parses on from `pos`: `Ok(true)` once the current command is complete (its
    /// arguments in `args`), `Ok(false)` when the buffer ends first.
    fn advance(&mut self) -> Result<bool, ProtocolError> {
        loop {
            match self.state {
                State::Start => {
                    self.start = self.pos;
                    self.args.clear();
                    match self.buf.get(self.pos) {
                        None => return Ok(false),
                        Some(b'*') => {
                            self.pos += 1;
                            self.state = State::ArrayLen;
                        }
                        Some(_) => self.state = State::Inline,
                    }
                }
                State::Inline => {
                    let Some(line) = self.line(MAX_INLINE, "inline command", false)? else {
                        return Ok(false);
                    };
                    self.split_words(line);
                    self.state = State::Start;
                    return Ok(true);
                }
                State::ArrayLen => {
                    let Some(line) = self.line(MAX_INLINE, "array header", true)? else {
                        return Ok(false);
                    };
                    let n = parse_int(&self.buf[line], "multibulk length")?;
                    if n <= 0 {
                        self.state = State::Start;
                        return Ok(true);
                    }
                    if n as u64 > self.limits.max_args as u64 {
                        return Err(ProtocolError(format!(
                            "multibulk length {n} exceeds the limit of {} arguments (--max-args)",
                            self.limits.max_args
                        )));
                    }
                    self.expected = n as usize;
                    self.args.reserve(self.expected.min(1024));
                    self.state = State::BulkStart;
                }
                State::BulkStart => {
                    if self.args.len() == self.expected {
                        self.state = State::Start;
                        return Ok(true);
                    }
                    match self.buf.get(self.pos) {
                        None => return Ok(false),
                        Some(b'$') => {
                            self.pos += 1;
                            self.state = State::BulkLen;
                        }
                        Some(&c) => return Err(ProtocolError(format!("expected '$', got {:?}", c as char))),
                    }
                }
                State::BulkLen => {
                    let Some(line) = self.line(MAX_BULK_HEADER, "bulk header", true)? else {
                        return Ok(false);
                    };
                    let len = parse_int(&self.buf[line], "bulk length")?;
                    if len < 0 {
                        return Err(ProtocolError(format!("invalid bulk length {len}")));
                    }
                    if len as u64 > self.limits.max_bulk as u64 {
                        return Err(ProtocolError(format!(
                            "bulk length {len} exceeds the limit of {} bytes (--max-bulk-bytes)",
                            self.limits.max_bulk
                        )));
                    }
                    self.state = State::Body(len as usize);
                }
                State::Body(len) => {
                    let end = self.pos + len;
                    if self.buf.len() < end + 2 {
                        return Ok(false);
                    }
                    self.examined += 2;
                    if &self.buf[end..end + 2] != b"\r\n" {
                        return Err(ProtocolError("bulk string not terminated by CRLF".into()));
                    }
                    self.args.push(self.pos - self.start..end - self.start);
                    self.pos = end + 2;
                    self.state = State::BulkStart;
                }
            }
        }
    }

    /// The line at `pos`, without its line end, once complete (then `pos` is past it);
    /// `None` while incomplete. The search resumes where the last one stopped. Lines of
    /// the protocol proper (`crlf`) must end with `\r\n`, inline ones may end with `\n`.
    fn line(&mut self, max: usize, what: &str, crlf: bool) -> Result<Option<Range<usize>>, ProtocolError> {
        let from = self.scanned.max(self.pos);
        let found = self.buf[from..].iter().position(|&b| b == b'\n');
        let end = found.map_or(self.buf.len(), |i| from + i);
        self.examined += (end - from) as u64 + u64::from(found.is_some());
        self.scanned = end;
        if end - self.pos > max {
            return Err(ProtocolError(format!("{what} longer than {max} bytes")));
        }
        if found.is_none() {
            return Ok(None);
        }
        let mut line = self.pos..end;
        self.pos = end + 1;
        if self.buf[..end].ends_with(b"\r") && line.end > line.start {
            line.end -= 1;
        } else if crlf {
            return Err(ProtocolError(format!("{what} not terminated by CRLF")));
        }
        Ok(Some(line))
    }

    /// The space-separated words of `line` as the command's arguments.
    fn split_words(&mut self, line: Range<usize>) {
        self.examined += line.len() as u64;
        let mut word = None;
        for i in line.start..=line.end {
            let space = i == line.end || self.buf[i] == b' ';
            match (word, space) {
                (None, false) => word = Some(i),
                (Some(w), true) => {
                    self.args.push(w - self.start..i - self.start);
                    word = None;
                }
                _ => {}
            }
        }
    }
}

/// A parsed command's arguments and the bytes it took; `None` while incomplete.
pub type Parsed = Option<(Vec<Vec<u8>>, usize)>;

/// Parses one command at the start of `buf` with the default limits: `Ok(None)` if it is
/// incomplete, else its arguments and the number of bytes it takes.
#[allow(dead_code)] // for tests; the servers keep a `Parser` per connection
pub fn parse(buf: &[u8]) -> Result<Parsed, ProtocolError> {
    let mut parser = Parser::new(Limits::DEFAULT);
    parser.feed(buf);
    let args = parser.next()?.map(|args| args.iter().map(|a| a.to_vec()).collect());
    Ok(args.map(|args| (args, parser.pos)))
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

/// Per-connection state: the parser with its buffered input, and the replies not yet
/// handed over.
pub struct Conn {
    parser: Parser,
    /// Replies produced and not yet sent.
    pub out: Vec<u8>,
}

impl Default for Conn {
    fn default() -> Self {
        Conn::new(Limits::DEFAULT)
    }
}

impl Conn {
    /// A connection enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Conn { parser: Parser::new(limits), out: Vec::new() }
    }

    /// Appends received bytes to the input.
    pub fn feed(&mut self, data: &[u8]) {
        self.parser.feed(data);
    }

    /// The parser (for its counters).
    #[allow(dead_code)] // for tests
    pub fn parser(&self) -> &Parser {
        &self.parser
    }

    /// Executes the complete commands of the input (pipelining), appending replies to
    /// `out`, until the input holds no complete command or `out` reaches [`REPLY_BATCH`]
    /// bytes. On a protocol error the error reply is in `out` and the connection must close.
    pub fn process(&mut self, store: &Store) -> Result<Status, ProtocolError> {
        loop {
            if self.out.len() >= REPLY_BATCH {
                return Ok(Status::OutputFull);
            }
            match self.parser.next() {
                Ok(Some(args)) => store.execute(&args, &mut self.out),
                Ok(None) => {
                    self.parser.compact();
                    return Ok(Status::NeedInput);
                }
                Err(e) => {
                    self.out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes());
                    return Err(e);
                }
            }
        }
    }
}
