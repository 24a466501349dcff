//! The commands a user types (interactive mode) or a script holds (scripted mode).
//!
//! ```text
//! any text              a message to the group
//! /msg <who> <text>     a private message; <who> = <uri>, a bare URI (sip:…), or a display name
//!                       seen as a sender ("quoted" when it has spaces)
//! /say <text>           a message to the group that may start with '/' (also: //text)
//! /quit                 leave (BYE) and exit
//! /wait <ms>            pause, still receiving                                 (scripts)
//! /expect <text>        wait until a received message contains <text>          (scripts)
//! # comment             ignored                                                (scripts)
//! ```
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Nothing to do (a blank line, or a comment in a script).
    Nothing,
    /// A message to the group.
    Say(String),
    /// A private message.
    Msg {
        who: String,
        text: String,
    },
    Wait(Duration),
    Expect(String),
    Quit,
    Help,
}

pub const HELP: &str = "\
text               send to the group
/msg <who> <text>  private message; <who> is <sip:uri>, sip:uri, or a display name you have seen
/say <text>        send text that starts with '/' (or type //text)
/quit              leave (BYE) and exit; Ctrl-C and Ctrl-D do the same
/wait <ms>         (scripts) pause, still receiving
/expect <text>     (scripts) wait until a received message contains <text>";

/// Parses one line. `script`: `#` starts a comment line.
pub fn parse(line: &str, script: bool) -> Result<Command, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() || (script && line.trim_start().starts_with('#')) {
        return Ok(Command::Nothing);
    }
    if let Some(rest) = line.strip_prefix("//") {
        return Ok(Command::Say(format!("/{rest}")));
    }
    let Some(cmd_line) = line.strip_prefix('/') else {
        return Ok(Command::Say(line.to_string()));
    };
    let (cmd, arg) = match cmd_line.split_once(char::is_whitespace) {
        Some((c, a)) => (c, a.trim_start()),
        None => (cmd_line, ""),
    };
    match cmd.to_ascii_lowercase().as_str() {
        "msg" | "m" | "private" => {
            let (who, text) = split_who(arg)?;
            if text.is_empty() {
                return Err("usage: /msg <who> <text>".into());
            }
            Ok(Command::Msg {
                who: who.to_string(),
                text: text.to_string(),
            })
        }
        "say" => Ok(Command::Say(arg.to_string())),
        "quit" | "leave" | "bye" | "exit" => Ok(Command::Quit),
        "wait" | "sleep" => {
            let ms: u64 = arg
                .trim()
                .trim_end_matches("ms")
                .parse()
                .map_err(|_| format!("usage: /wait <milliseconds> (got {arg:?})"))?;
            Ok(Command::Wait(Duration::from_millis(ms)))
        }
        "expect" => {
            if arg.is_empty() {
                return Err("usage: /expect <text>".into());
            }
            Ok(Command::Expect(arg.to_string()))
        }
        "help" | "?" => Ok(Command::Help),
        other => Err(format!("unknown command /{other} (try /help)")),
    }
}

/// Splits `<who> <text>`: `who` is `"a quoted name"`, `<uri>` or one word.
fn split_who(arg: &str) -> Result<(&str, &str), String> {
    let arg = arg.trim_start();
    let end = if arg.starts_with('"') {
        let mut escaped = false;
        let mut close = None;
        for (i, c) in arg.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    close = Some(i + 1);
                    break;
                }
                _ => {}
            }
        }
        close.ok_or("unterminated quoted name")?
    } else if arg.starts_with('<') {
        arg.find('>').map(|i| i + 1).ok_or("unterminated <uri>")?
    } else {
        arg.find(char::is_whitespace).unwrap_or(arg.len())
    };
    if end == 0 {
        return Err("usage: /msg <who> <text>".into());
    }
    Ok((&arg[..end], arg[end..].trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse("hello all", false),
            Ok(Command::Say("hello all".into()))
        );
        assert_eq!(parse("  ", false), Ok(Command::Nothing));
        assert_eq!(parse("# hi", true), Ok(Command::Nothing));
        assert_eq!(parse("# hi", false), Ok(Command::Say("# hi".into())));
        assert_eq!(
            parse("//etc/passwd", false),
            Ok(Command::Say("/etc/passwd".into()))
        );
        assert_eq!(parse("/say /x", false), Ok(Command::Say("/x".into())));
        assert_eq!(parse("/quit", false), Ok(Command::Quit));
        assert_eq!(
            parse("/wait 250", true),
            Ok(Command::Wait(Duration::from_millis(250)))
        );
        assert_eq!(
            parse("/expect I am bob-2", true),
            Ok(Command::Expect("I am bob-2".into()))
        );
        assert!(parse("/expect", true).is_err());
        assert!(parse("/wait soon", true).is_err());
        assert!(parse("/frobnicate", false).is_err());
    }

    #[test]
    fn msg_targets() {
        assert_eq!(
            parse("/msg Alice psst, hi", false),
            Ok(Command::Msg {
                who: "Alice".into(),
                text: "psst, hi".into()
            })
        );
        assert_eq!(
            parse("/msg \"Bob \\\"B\\\" Smith\" hi", false),
            Ok(Command::Msg {
                who: "\"Bob \\\"B\\\" Smith\"".into(),
                text: "hi".into()
            })
        );
        assert_eq!(
            parse("/msg <sip:anonymous2@anonymous.invalid> hi there", false),
            Ok(Command::Msg {
                who: "<sip:anonymous2@anonymous.invalid>".into(),
                text: "hi there".into()
            })
        );
        assert!(parse("/msg Alice", false).is_err());
        assert!(parse("/msg \"Alice hi", false).is_err());
    }
}
