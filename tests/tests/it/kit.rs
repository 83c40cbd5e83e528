//! The kit's own parts that no other test would catch going wrong quietly: the raw HTTP
//! client's framing (an answer cut short or read past its end would make other tests
//! flaky, not fail).

use envsync_tests::http::parse_response;

#[test]
fn answers_end_at_their_length_their_last_chunk_or_the_close() {
    let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    assert_eq!(parse_response(&sized[..sized.len() - 1], false), None);
    let raw = parse_response(sized, false).expect("complete");
    assert_eq!((raw.status, raw.body.as_str()), (200, "hi"));
    assert_eq!(raw.head, "HTTP/1.1 200 OK\r\nContent-Length: 2");

    let chunked =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n";
    assert_eq!(parse_response(&chunked[..chunked.len() - 7], false), None);
    assert_eq!(
        parse_response(chunked, false).expect("complete").body,
        "hello"
    );

    let to_close = b"HTTP/1.1 413 Payload Too Large\r\n\r\ntoo big";
    assert_eq!(parse_response(to_close, false), None);
    assert_eq!(
        parse_response(to_close, true).expect("closed").body,
        "too big"
    );
    assert_eq!(parse_response(b"", true), None);
    assert_eq!(parse_response(b"garbage", true), None);
}
