//! The kv example's RESP parser and store: property tests with arbitrary and truncated
//! input (never a panic, never a wrong parse), and command semantics.

#[path = "../examples/kv/resp.rs"]
#[allow(dead_code)]
mod resp;

use proptest::prelude::*;
use resp::{encode, parse, Conn, Store};

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&input);
        let mut conn = Conn { input, out: Vec::new() };
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
            let mut c = Conn { input: wire.clone(), out: Vec::new() };
            c.process(&Store::default()).unwrap();
            c.out
        };
        let split = split.min(wire.len());
        let store = Store::default();
        let mut c = Conn::default();
        c.input.extend_from_slice(&wire[..split]);
        c.process(&store).unwrap();
        c.input.extend_from_slice(&wire[split..]);
        c.process(&store).unwrap();
        prop_assert!(c.input.is_empty());
        prop_assert_eq!(c.out, whole);
    }
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
        let mut c = Conn { input: bad.to_vec(), out: Vec::new() };
        assert!(c.process(&Store::default()).is_err(), "{:?}", String::from_utf8_lossy(bad));
        assert!(c.out.starts_with(b"-ERR Protocol error"), "{:?}", String::from_utf8_lossy(&c.out));
    }
}
