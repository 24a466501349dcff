//! Reading a received message: message/cpim (RFC 3862) into the [`Message`] the API reports.
use super::*;

/// A received message (message/cpim, RFC 3862) → [`Message`]: sender and recipient from the CPIM
/// From and To, private when To is not the group (URI equivalence), the encapsulated text.
pub fn incoming(group: &str, message_id: String, content_type: &str, body: &[u8]) -> Message {
    let is_cpim = psip::parse_media_type(content_type).is_ok_and(|t| t.is("message", "cpim"));
    let mut m = Message {
        message_id,
        from: None,
        to: None,
        private: false,
        content_type: content_type.to_string(),
        text: String::from_utf8_lossy(body).into_owned(),
    };
    if !is_cpim {
        return m;
    }
    match cpim::parse_message(body) {
        Ok(c) => {
            m.from = c.headers.from.as_ref().map(Identity::from_cpim);
            m.to = c.headers.to.first().map(Identity::from_cpim);
            m.private = m.to.as_ref().is_some_and(|t| !same_uri(&t.uri, group));
            m.content_type = c.content_type.to_string();
            let textual = psip::parse_media_type(c.content_type)
                .is_ok_and(|t| t.type_.eq_ignore_ascii_case("text"));
            m.text = if textual {
                String::from_utf8_lossy(c.body).into_owned()
            } else {
                format!("[{} octets of {}]", c.body.len(), c.content_type)
            };
        }
        Err(e) => m.text = format!("[unreadable message/cpim: {e}]"),
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOUNGE: &str = "sip:lounge@im.example.net";

    fn cpim_body(to: &str, ct: &str, body: &[u8]) -> Vec<u8> {
        cpim::compose(
            r#""bob-2" <sip:anonymous2@anonymous.invalid>"#,
            &[to.to_string()],
            &[("DateTime", "2024-05-01T12:00:00Z")],
            ct,
            body,
        )
    }

    #[test]
    fn group_and_private_messages() {
        let g = incoming(
            LOUNGE,
            "m1".into(),
            "message/cpim",
            &cpim_body(
                "<sip:lounge@IM.example.net>",
                "text/plain;charset=UTF-8",
                "héllo".as_bytes(),
            ),
        );
        assert_eq!(
            g.from,
            Some(Identity::new(
                Some("bob-2"),
                "sip:anonymous2@anonymous.invalid"
            ))
        );
        assert!(!g.private, "the group URI, compared by URI equivalence");
        assert_eq!(g.text, "héllo");
        assert_eq!(g.content_type, "text/plain;charset=UTF-8");
        let p = incoming(
            LOUNGE,
            "m2".into(),
            "Message/CPIM",
            &cpim_body(r#""Alice" <sip:alice@example.com>"#, "text/plain", b"psst"),
        );
        assert!(p.private);
        assert_eq!(
            p.to,
            Some(Identity::new(Some("Alice"), "sip:alice@example.com"))
        );
    }

    #[test]
    fn other_bodies_are_summarised_not_dumped() {
        let img = incoming(
            LOUNGE,
            "m3".into(),
            "message/cpim",
            &cpim_body("<sip:lounge@im.example.net>", "image/png", &[0, 1, 2]),
        );
        assert_eq!(img.text, "[3 octets of image/png]");
        let plain = incoming(LOUNGE, "m4".into(), "text/plain", b"raw");
        assert_eq!((plain.from, plain.text.as_str()), (None, "raw"));
        let broken = incoming(LOUNGE, "m5".into(), "message/cpim", b"From: nobody\r\n\r\n");
        assert!(
            broken.text.starts_with("[unreadable message/cpim"),
            "{}",
            broken.text
        );
    }
}
