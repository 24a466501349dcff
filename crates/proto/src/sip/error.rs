use std::fmt;

/// Why a SIP header value (or a piece of one) was refused.
///
/// Positions are not carried: header values are short and the callers answer with a generic
/// 400, so the variant alone is what a log line needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SipError {
    /// The value is empty or only whitespace.
    Empty,
    /// A quoted-string has no closing `"`.
    UnterminatedQuote,
    /// A `<` has no matching `>`.
    UnterminatedAngle,
    /// `<>` or an addr-spec with nothing in it.
    EmptyUri,
    /// A character that the grammar does not allow where it was found.
    UnexpectedChar(char),
    /// A control character (CR, LF, NUL, …) where none may appear, or one that cannot be
    /// represented when composing.
    ControlCharacter,
    /// A backslash escape that is not allowed (`\` before CR or LF, or at the very end).
    BadEscape,
    /// The URI has no `scheme:` or the scheme is not `ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")`.
    BadScheme,
    /// The host part of a sip/sips URI is empty or malformed.
    BadHost,
    /// The port is not a number in 0..=65535.
    BadPort,
    /// A `%` not followed by two hex digits, or escapes that do not decode to UTF-8.
    BadPercentEncoding,
    /// A URI or header parameter is malformed (empty name, empty value after `=`).
    BadParam,
    /// A `tel:` number is empty or holds characters outside RFC 3966 phonedigit(-hex).
    BadTelNumber,
    /// A media type is not `type/subtype *(;name=value)`.
    BadMediaType,
    /// More URI parameters or headers than [`crate::sip::MAX_URI_PARAMS`]: refused so that
    /// comparing URIs stays cheap whatever a peer sends.
    TooManyParams,
}

impl fmt::Display for SipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SipError::Empty => f.write_str("empty value"),
            SipError::UnterminatedQuote => f.write_str("unterminated quoted string"),
            SipError::UnterminatedAngle => f.write_str("missing '>'"),
            SipError::EmptyUri => f.write_str("empty URI"),
            SipError::UnexpectedChar(c) => write!(f, "unexpected character {c:?}"),
            SipError::ControlCharacter => f.write_str("control character"),
            SipError::BadEscape => f.write_str("invalid backslash escape"),
            SipError::BadScheme => f.write_str("missing or invalid URI scheme"),
            SipError::BadHost => f.write_str("missing or invalid host"),
            SipError::BadPort => f.write_str("invalid port"),
            SipError::BadPercentEncoding => f.write_str("invalid %-encoding"),
            SipError::BadParam => f.write_str("malformed parameter"),
            SipError::BadTelNumber => f.write_str("invalid telephone number"),
            SipError::BadMediaType => f.write_str("malformed media type"),
            SipError::TooManyParams => f.write_str("too many URI parameters"),
        }
    }
}

impl std::error::Error for SipError {}
