//! Property tests for `multipart`.
use chat_alias_proto::multipart;
use proptest::prelude::*;

proptest! {
    #[test]
    fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..512), boundary in any::<String>()) {
        let _ = multipart::parse(&b, &boundary);
        let _ = multipart::parse(&b, "b");
    }

    #[test]
    fn parse_never_panics_structured(pieces in proptest::collection::vec(
        prop_oneof![Just("--b".to_string()), Just("\r\n".to_string()), Just("\n".to_string()), Just("--".to_string()),
                    Just(" ".to_string()), Just("Content-Type: x/y".to_string()), Just(":".to_string()), "[a-z\t]{0,5}"], 0..24)) {
        let b = pieces.concat();
        if let Ok(parts) = multipart::parse(b.as_bytes(), "b") {
            prop_assert!(!parts.is_empty());
        }
    }

    #[test]
    fn compose_round_trip(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..4),
                          random in proptest::collection::vec(any::<u8>(), 0..30),
                          value in "[ -~]{0,30}") {
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let boundary = multipart::choose_boundary(&random, &refs);
        prop_assert!(multipart::valid_boundary(&boundary));
        let headers: Vec<(&str, &str)> = vec![("Content-Type", "application/octet-stream"), ("X-Value", &value)];
        let specs: Vec<multipart::PartSpec<'_>> = refs.iter().map(|b| (headers.as_slice(), *b)).collect();
        let out = multipart::try_compose(&boundary, &specs).unwrap();
        let parts = multipart::parse(&out, &boundary).unwrap();
        prop_assert_eq!(parts.len(), bodies.len());
        for (p, b) in parts.iter().zip(&bodies) {
            prop_assert_eq!(p.body, &b[..]);
            prop_assert_eq!(p.content_type, Some("application/octet-stream"));
            prop_assert_eq!(p.headers[1], ("X-Value", value.trim()));
        }
    }

    #[test]
    fn boundary_never_in_bodies(bodies in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'c'), Just(b'a'), Just(b'-'), Just(b'.'), Just(b'1'), Just(b'0')], 0..64), 0..4)) {
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let boundary = multipart::choose_boundary(&[], &refs);
        prop_assert!(multipart::valid_boundary(&boundary));
        for b in &bodies {
            prop_assert!(!b.windows(boundary.len()).any(|w| w == boundary.as_bytes()));
        }
    }
}
