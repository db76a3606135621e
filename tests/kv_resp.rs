//! The kv example's RESP parser and store: property tests with arbitrary and truncated
//! input (never a panic, never a wrong parse), and command semantics.

#[path = "../examples/kv/resp.rs"]
#[allow(dead_code)]
mod resp;

use proptest::prelude::*;
use resp::{encode, parse, Conn, Limits, Status, Store, IDLE_CAPACITY};

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&input);
        let mut conn = Conn::default();
        conn.feed(&input);
        let _ = conn.process(&Store::default());
    }

    #[test]
    fn encoded_commands_parse_back_and_every_prefix_is_incomplete(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6)
    ) {
        let wire = encode(&args);
        let (parsed, used) = parse(&wire).unwrap().unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(parsed.iter().map(|a| a.to_vec()).collect::<Vec<_>>(), args);
        for cut in 1..wire.len() {
            prop_assert_eq!(parse(&wire[..cut]), Ok(None), "prefix of {} bytes", cut);
        }
    }

    #[test]
    fn pipelined_commands_split_anywhere_give_the_same_replies(
        keys in proptest::collection::vec("[a-z]{1,8}", 1..20),
        split in 0usize..400,
    ) {
        let mut wire = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            wire.extend(encode(&[b"SET".to_vec(), k.clone().into_bytes(), i.to_string().into_bytes()]));
            wire.extend(encode(&[b"GET".to_vec(), k.clone().into_bytes()]));
        }
        let whole = {
            let mut c = Conn::default();
            c.feed(&wire);
            c.process(&Store::default()).unwrap();
            c.out
        };
        let split = split.min(wire.len());
        let store = Store::default();
        let mut c = Conn::default();
        c.feed(&wire[..split]);
        c.process(&store).unwrap();
        c.feed(&wire[split..]);
        c.process(&store).unwrap();
        prop_assert_eq!(c.parser().buffered(), 0);
        prop_assert_eq!(c.out, whole);
    }

    #[test]
    fn input_fed_in_small_pieces_gives_the_same_replies_and_is_examined_about_once(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..40),
        inline in "[A-Z]{1,8}( [a-z0-9]{1,8}){0,5}",
        piece in 1usize..64,
    ) {
        let mut wire = encode(&args);
        wire.extend(inline.as_bytes());
        wire.extend(b"\r\n");
        wire.extend(encode(&[b"PING"]));
        let whole = {
            let mut c = Conn::default();
            c.feed(&wire);
            c.process(&Store::default()).unwrap();
            c.out
        };
        let mut c = Conn::default();
        for chunk in wire.chunks(piece) {
            c.feed(chunk);
            prop_assert_eq!(c.process(&Store::default()), Ok(Status::NeedInput));
        }
        prop_assert_eq!(c.parser().buffered(), 0);
        prop_assert_eq!(&c.out, &whole);
        prop_assert!(c.out.ends_with(b"+PONG\r\n"));
        prop_assert!(c.parser().examined() <= 2 * wire.len() as u64, "examined {} of {}", c.parser().examined(), wire.len());
    }
}

/// One `EXISTS` with a million arguments (7 MB), received 1000 bytes at a time: the
/// parser resumes where it stopped, so it looks at each byte about once (it used to start
/// over on every read: ~7000 reads × 3.5 MB on average).
#[test]
fn a_million_argument_command_split_across_reads_is_parsed_in_linear_work() {
    const ARGS: usize = 1_000_000;
    let mut wire = format!("*{}\r\n$6\r\nEXISTS\r\n", ARGS + 1).into_bytes();
    for _ in 0..ARGS {
        wire.extend_from_slice(b"$1\r\nk\r\n");
    }
    let store = Store::default();
    let mut c = Conn::default();
    let mut reads = 0;
    for chunk in wire.chunks(1000) {
        c.feed(chunk);
        assert_eq!(c.process(&store), Ok(Status::NeedInput));
        reads += 1;
    }
    assert_eq!(reads, wire.len().div_ceil(1000));
    assert_eq!(c.out, b":0\r\n");
    let examined = c.parser().examined();
    assert!(examined <= 2 * wire.len() as u64, "examined {examined} bytes of {}", wire.len());
}

fn run(store: &Store, cmd: &[&str]) -> String {
    let mut out = Vec::new();
    let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
    store.execute(&args, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn command_semantics() {
    let s = Store::default();
    assert_eq!(run(&s, &["PING"]), "+PONG\r\n");
    assert_eq!(run(&s, &["ping", "hi"]), "$2\r\nhi\r\n");
    assert_eq!(run(&s, &["ECHO", "x y"]), "$3\r\nx y\r\n");
    assert_eq!(run(&s, &["GET", "k"]), "$-1\r\n");
    assert_eq!(run(&s, &["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(run(&s, &["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(run(&s, &["EXISTS", "k", "nope", "k"]), ":2\r\n");
    assert_eq!(run(&s, &["INCR", "n"]), ":1\r\n");
    assert_eq!(run(&s, &["INCR", "n"]), ":2\r\n");
    assert!(run(&s, &["INCR", "k"]).starts_with("-ERR value is not an integer"));
    assert_eq!(run(&s, &["DEL", "k", "n", "nope"]), ":2\r\n");
    assert!(run(&s, &["GET"]).starts_with("-ERR wrong number of arguments for 'get'"));
    assert!(run(&s, &["FLY"]).starts_with("-ERR unknown command 'FLY'"));
}

#[test]
fn malformed_input_is_a_protocol_error_with_a_reply() {
    for bad in [&b"*2\r\n$3\r\nGET\r\n:5\r\n"[..], b"*1\r\n$-5\r\n", b"*x\r\n", b"*1\r\n$3\r\nGETXX"] {
        let mut c = Conn::default();
        c.feed(bad);
        assert!(c.process(&Store::default()).is_err(), "{:?}", String::from_utf8_lossy(bad));
        assert!(c.out.starts_with(b"-ERR Protocol error"), "{:?}", String::from_utf8_lossy(&c.out));
    }
}

/// Each limit is a protocol error whose reply names it.
#[test]
fn each_limit_is_a_protocol_error_naming_it() {
    let limits = Limits { max_bulk: 1000, max_args: 10, max_query: 4096 };
    let mut too_much_query = encode(&[b"SET".to_vec(), b"k".to_vec(), vec![b'v'; 900]]);
    too_much_query[1] = b'9'; // 9 arguments announced, 3 sent: incomplete
    for _ in 0..4 {
        too_much_query.extend(encode(&[vec![b'x'; 900]])[4..].iter()); // more 900-byte bulks
    }
    let cases: [(Vec<u8>, &str); 3] = [
        (b"*1\r\n$1001\r\n".to_vec(), "--max-bulk-bytes"),
        (b"*11\r\n".to_vec(), "--max-args"),
        (too_much_query, "--max-query-bytes"),
    ];
    for (input, flag) in cases {
        let mut c = Conn::new(limits);
        c.feed(&input);
        assert!(c.process(&Store::default()).is_err(), "{flag}");
        let reply = String::from_utf8_lossy(&c.out).to_string();
        assert!(reply.starts_with("-ERR Protocol error: ") && reply.contains(flag), "{flag}: {reply}");
    }
    // At the limits themselves, all is well.
    let mut c = Conn::new(limits);
    let mut args = vec![b"EXISTS".to_vec(), vec![b'k'; 1000]];
    args.resize(10, b"k".to_vec());
    c.feed(&encode(&args));
    assert_eq!(c.process(&Store::default()), Ok(Status::NeedInput));
    assert_eq!(c.out, b":0\r\n");
}

/// After a big command the input buffer shrinks back to its idle size once empty.
#[test]
fn the_input_buffer_shrinks_back_after_a_big_command() {
    let store = Store::default();
    let mut c = Conn::default();
    let wire = encode(&[b"SET".to_vec(), b"k".to_vec(), vec![7u8; 8 << 20]]);
    for chunk in wire.chunks(16 << 10) {
        c.feed(chunk);
        assert_eq!(c.process(&store), Ok(Status::NeedInput));
    }
    assert_eq!(c.out, b"+OK\r\n");
    assert_eq!(c.parser().buffered(), 0);
    assert!(c.parser().capacity() <= IDLE_CAPACITY, "capacity {} after the command", c.parser().capacity());
    // Still works, and a small pipeline does not grow it.
    c.out.clear();
    c.feed(&encode(&[b"GET".to_vec(), b"nope".to_vec()]));
    assert_eq!(c.process(&store), Ok(Status::NeedInput));
    assert_eq!(c.out, b"$-1\r\n");
    assert!(c.parser().capacity() <= IDLE_CAPACITY);
}
