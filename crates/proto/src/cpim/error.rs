use std::fmt;

use crate::mime::HeaderBlockError;

/// Why a message/cpim body (or a piece of one) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpimError {
    /// The blank line ending the header block has not arrived yet: feed more bytes.
    Incomplete,
    /// No blank line within [`super::MAX_HEADER_BLOCK`] bytes.
    TooLarge,
    /// A header line is not UTF-8.
    NotUtf8,
    /// A control character (other than HTAB) in a header line, or — when composing — one that
    /// cannot be written.
    ControlCharacter,
    /// A line starting with whitespace: CPIM headers are never folded (RFC 3862 §3.1).
    Folding,
    /// A line without `:` or with an invalid header name.
    MalformedHeader,
    /// `From` appears more than once (RFC 4975 §13 / RFC 3862 §3: only NS, To and cc may repeat).
    DuplicateFrom,
    /// A From/To value is not `[Formal-name] "<" URI ">"`; the text says what is wrong.
    BadAddress(&'static str),
    /// A backslash escape in a quoted Formal-name that RFC 3862 §2.3.1 does not define, or a lone
    /// UTF-16 surrogate in `\uXXXX`.
    BadEscape,
    /// The encapsulated MIME part has no Content-Type (required by RFC 3862 §2.4).
    MissingContentType,
    /// A header line (CPIM or encapsulated MIME) ended by LF without CR, when read with
    /// [`super::LineEnds::CrlfOnly`].
    BareLf,
}

impl fmt::Display for CpimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpimError::Incomplete => f.write_str("incomplete CPIM header block"),
            CpimError::TooLarge => f.write_str("CPIM header block too large"),
            CpimError::NotUtf8 => f.write_str("CPIM header is not UTF-8"),
            CpimError::ControlCharacter => f.write_str("control character in CPIM header"),
            CpimError::Folding => f.write_str("folded CPIM header line"),
            CpimError::MalformedHeader => f.write_str("malformed CPIM header line"),
            CpimError::DuplicateFrom => f.write_str("more than one CPIM From header"),
            CpimError::BadAddress(why) => write!(f, "malformed CPIM address: {why}"),
            CpimError::BadEscape => f.write_str("invalid escape in CPIM string"),
            CpimError::MissingContentType => {
                f.write_str("encapsulated MIME part without Content-Type")
            }
            CpimError::BareLf => f.write_str("bare LF in CPIM headers"),
        }
    }
}

impl std::error::Error for CpimError {}

impl From<HeaderBlockError> for CpimError {
    fn from(e: HeaderBlockError) -> Self {
        match e {
            HeaderBlockError::Incomplete => CpimError::Incomplete,
            HeaderBlockError::NotUtf8 => CpimError::NotUtf8,
            HeaderBlockError::ControlCharacter => CpimError::ControlCharacter,
            HeaderBlockError::Malformed => CpimError::MalformedHeader,
            HeaderBlockError::BareLf => CpimError::BareLf,
        }
    }
}
