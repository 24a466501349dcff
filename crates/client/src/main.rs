//! `chat-alias-client`: join a Chat Alias group and chat, interactively or from a script.
use chat_alias_client::command::{self, Command, HELP};
use chat_alias_client::{
    Chat, ChatSender, Config, Event, Failure, FailureKind, JoinError, Transport,
};
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "chat-alias-client",
    version,
    about = "IM Client for OMA SIMPLE IM chat groups with Chat Alias (SIP + MSRP)",
    long_about = "Joins a pre-defined chat group over SIP — anonymously under an alias (--alias: \
                  Privacy: id, From \"alias\" <sip:anonymous@anonymous.invalid>) or with your own \
                  address — and chats over MSRP. The server may change the alias to keep it unique \
                  (bob → bob-2): the client then sends as the identity the 200 OK assigned."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Join a group and chat (interactive on a terminal; scripted with --script or a piped stdin).
    #[command(after_help = HELP_AFTER)]
    Join(JoinArgs),
    /// Send OPTIONS to the server; exit 0 if it answers 200.
    Ping {
        /// The SIP server, HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        server: String,
        /// Use TCP instead of UDP.
        #[arg(long)]
        tcp: bool,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 2000, value_name = "MS")]
        timeout: u64,
    },
}

const HELP_AFTER: &str = "\
Commands (typed, or one per line in a script):
  text               send to the group
  /msg <who> <text>  private message; <who> is <sip:uri>, sip:uri, or a display name you have seen
  /say <text>        send text that starts with '/' (or type //text)
  /quit              leave (BYE) and exit; Ctrl-C and Ctrl-D do the same
  /wait <ms>         (scripts) pause, still receiving
  /expect <text>     (scripts) wait until a received message contains <text>
  # comment          (scripts) ignored

Exit status: 0 done, 1 a script failed (/expect not met, bad command), 2 the join was refused or
failed, 130 interrupted while joining.";

#[derive(Args)]
struct JoinArgs {
    /// The group URI, e.g. sip:lounge@im.example.net.
    group: String,
    /// The SIP server, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    server: String,
    /// Use TCP instead of UDP for SIP.
    #[arg(long)]
    tcp: bool,
    /// Your own address (P-Asserted-Identity; From unless --alias).
    #[arg(long, value_name = "SIP-URI")]
    identity: String,
    /// Join anonymously under this alias.
    #[arg(long, value_name = "NAME")]
    alias: Option<String>,
    /// Your display name when joining with your own identity.
    #[arg(long, value_name = "DISPLAY", conflicts_with = "alias")]
    name: Option<String>,
    /// Read commands from FILE (otherwise from stdin when it is not a terminal).
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Print one JSON object per event.
    #[arg(long)]
    json: bool,
    /// How long /expect waits, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    expect_timeout: u64,
    /// MSRP chunk size in octets.
    #[arg(long, default_value_t = 2048, value_name = "OCTETS")]
    chunk_size: usize,
    /// Do not add P-Asserted-Identity (the server will then not know who you are).
    #[arg(long)]
    no_asserted_identity: bool,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Ping {
            server,
            tcp,
            timeout,
        } => match resolve(&server).and_then(|s| {
            chat_alias_client::ping(s, transport(tcp), Duration::from_millis(timeout))
        }) {
            Ok((200, reason)) => {
                println!("200 {reason}");
                0
            }
            Ok((code, reason)) => {
                println!("{code} {reason}");
                1
            }
            Err(e) => {
                eprintln!("no answer: {e}");
                1
            }
        },
        Cmd::Join(args) => join(args),
    };
    std::process::exit(code);
}

fn transport(tcp: bool) -> Transport {
    if tcp {
        Transport::Tcp
    } else {
        Transport::Udp
    }
}

fn resolve(server: &str) -> Result<SocketAddr, String> {
    server
        .to_socket_addrs()
        .map_err(|e| format!("--server {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("--server {server}: no address"))
}

/// Prints events, as text or JSON lines.
#[derive(Clone, Copy)]
struct Printer {
    json: bool,
}

impl Printer {
    fn line(&self, e: &Event) -> String {
        if self.json {
            e.to_json()
        } else {
            e.to_string()
        }
    }

    fn print(&self, e: &Event) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.line(e));
        let _ = out.flush();
    }
}

fn join(a: JoinArgs) -> i32 {
    let printer = Printer { json: a.json };
    let server = match resolve(&a.server) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut cfg = Config::new(&a.group, server, &a.identity).transport(transport(a.tcp));
    cfg.alias = a.alias.clone();
    cfg.display_name = a.name.clone();
    cfg.chunk_size = a.chunk_size.max(1);
    cfg.assert_identity = !a.no_asserted_identity;

    let script: Option<Box<dyn BufRead + Send>> = match &a.script {
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => Some(Box::new(std::io::BufReader::new(f))),
            Err(e) => {
                eprintln!("--script {}: {e}", path.display());
                return 2;
            }
        },
        None if !std::io::stdin().is_terminal() => {
            Some(Box::new(std::io::BufReader::new(std::io::stdin())))
        }
        None => None,
    };

    let joining = Chat::start(cfg);
    let interrupted = Arc::new(AtomicBool::new(false));
    watch_signals(joining.sender(), interrupted.clone());
    let chat = match joining.wait() {
        Ok(c) => c,
        Err(e) => {
            printer.print(&match &e {
                JoinError::Refused { code, reason } => Event::Refused {
                    code: *code,
                    reason: reason.clone(),
                },
                other => Event::Error(Failure::new(FailureKind::Join, other.to_string())),
            });
            return if e == JoinError::Cancelled { 130 } else { 2 };
        }
    };
    match script {
        Some(lines) => {
            Script::new(chat, printer, Duration::from_millis(a.expect_timeout)).run(lines)
        }
        None => interactive(chat, printer),
    }
}

/// SIGINT/SIGTERM: leave (BYE) and let the session end; a second signal exits at once.
fn watch_signals(sender: ChatSender, flag: Arc<AtomicBool>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            sender.leave();
        }
    });
}

// ---- scripted mode

enum Input {
    Line(String),
    Eof,
}

struct Script {
    chat: Chat,
    printer: Printer,
    expect_timeout: Duration,
    /// Texts of the messages received, in order, and how many of them /expect has consumed.
    received: Vec<String>,
    cursor: usize,
    ended: bool,
}

impl Script {
    fn new(chat: Chat, printer: Printer, expect_timeout: Duration) -> Script {
        Script {
            chat,
            printer,
            expect_timeout,
            received: Vec::new(),
            cursor: 0,
            ended: false,
        }
    }

    /// Takes one event (waiting up to `wait`) and prints it; false when nothing came.
    fn pump(&mut self, wait: Duration) -> bool {
        if self.ended {
            std::thread::sleep(wait);
            return false;
        }
        match self.chat.next_event(wait) {
            Some(e) => {
                if let Event::Message(m) = &e {
                    self.received.push(m.text.clone());
                }
                if matches!(e, Event::Left { .. }) {
                    self.ended = true;
                }
                self.printer.print(&e);
                true
            }
            None => false,
        }
    }

    fn pump_until(&mut self, deadline: Instant) {
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if self.ended {
                return;
            }
            self.pump(left.min(Duration::from_millis(50)));
        }
    }

    fn run(mut self, input: Box<dyn BufRead + Send>) -> i32 {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in input.lines() {
                match line {
                    Ok(l) => {
                        if tx.send(Input::Line(l)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send(Input::Eof);
        });
        let mut status = 0;
        while !self.ended {
            // Print what arrives while waiting for the next line.
            while self.pump(Duration::ZERO) {}
            let line = match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(Input::Line(l)) => l,
                Ok(Input::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
            };
            match command::parse(&line, true) {
                Ok(Command::Nothing) => {}
                Ok(Command::Say(text)) => {
                    let id = self.chat.say(&text);
                    self.confirm(&id);
                }
                Ok(Command::Msg { who, text }) => match self.chat.send_private(&who, &text) {
                    Ok(id) => self.confirm(&id),
                    Err(e) => {
                        self.printer
                            .print(&Event::Error(Failure::new(FailureKind::Command, e)));
                        status = 1;
                    }
                },
                Ok(Command::Wait(d)) => self.pump_until(Instant::now() + d),
                Ok(Command::Expect(text)) => {
                    if !self.expect(&text) {
                        self.printer.print(&Event::Error(Failure::new(
                            FailureKind::Expect,
                            format!(
                                "no message containing {text:?} within {} ms",
                                self.expect_timeout.as_millis()
                            ),
                        )));
                        status = 1;
                        break;
                    }
                }
                Ok(Command::Quit) => break,
                Ok(Command::Help) => println!("{HELP}"),
                Err(e) => {
                    self.printer
                        .print(&Event::Error(Failure::new(FailureKind::Command, e)));
                    status = 1;
                    break;
                }
            }
        }
        // Leave, printing everything up to the Left event.
        self.chat.sender().leave();
        while !self.ended {
            if !self.pump(Duration::from_secs(60)) {
                break;
            }
        }
        status
    }

    /// Prints events until the outcome of message `id` (at most 35 s: the MSRP transaction
    /// timeout is 30 s).
    fn confirm(&mut self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(35);
        while Instant::now() < deadline && !self.ended {
            let Some(e) = self.chat.next_event(Duration::from_millis(50)) else {
                continue;
            };
            let done = match &e {
                Event::Sent(s) => s.message_id == id,
                Event::Error(f) => f.message_id.as_deref() == Some(id),
                _ => false,
            };
            if let Event::Message(m) = &e {
                self.received.push(m.text.clone());
            }
            if matches!(e, Event::Left { .. }) {
                self.ended = true;
            }
            self.printer.print(&e);
            if done {
                return;
            }
        }
    }

    /// Waits until a message received after the last matched one contains `text`.
    fn expect(&mut self, text: &str) -> bool {
        let deadline = Instant::now() + self.expect_timeout;
        loop {
            if let Some(i) = self.received[self.cursor..]
                .iter()
                .position(|m| m.contains(text))
            {
                self.cursor += i + 1;
                return true;
            }
            if self.ended || Instant::now() >= deadline {
                return false;
            }
            self.pump(Duration::from_millis(50));
        }
    }
}

// ---- interactive mode

fn interactive(chat: Chat, printer: Printer) -> i32 {
    use rustyline::error::ReadlineError;
    use rustyline::ExternalPrinter as _;

    let mut rl = match rustyline::DefaultEditor::new() {
        Ok(rl) => rl,
        Err(e) => {
            eprintln!("line editor: {e}");
            return 1;
        }
    };
    let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
    let sender = chat.sender();
    let prompt = format!("{}> ", chat.identity().short());
    let mut chat = chat;
    if let Some(j) = chat.wait_for(Duration::from_secs(1), |e| matches!(e, Event::Joined(_))) {
        println!("{}", printer.line(&j));
    }
    // The joined line first, then whatever arrives, printed above the line being typed.
    let ext = rl.create_external_printer();
    let ended = Arc::new(AtomicBool::new(false));
    let ended2 = ended.clone();
    let quitting = Arc::new(AtomicBool::new(false));
    let quitting2 = quitting.clone();
    let printer_thread = std::thread::spawn(move || {
        let mut ext = ext.ok();
        loop {
            let e = match chat.next_event(Duration::from_secs(1)) {
                Some(e) => e,
                // Once the driver has finished, whatever it sent is in the channel.
                None if chat.ended() => match chat.next_event(Duration::ZERO) {
                    Some(e) => e,
                    None => break,
                },
                None => continue,
            };
            if matches!(e, Event::Sent(_)) && !printer.json {
                continue; // the typed line is on screen already
            }
            let line = printer.line(&e);
            match &mut ext {
                Some(p) => {
                    let _ = p.print(format!("{line}\n"));
                }
                None => println!("{line}"),
            }
            if matches!(e, Event::Left { .. }) {
                break;
            }
        }
        drop(chat);
        ended2.store(true, Ordering::SeqCst);
        if !quitting2.load(Ordering::SeqCst) {
            // The server ended the session while the prompt waits for a line: give the
            // terminal back and exit.
            if let Some(t) = &saved {
                let _ = nix::sys::termios::tcsetattr(
                    std::io::stdin(),
                    nix::sys::termios::SetArg::TCSANOW,
                    t,
                );
            }
            println!();
            std::process::exit(0);
        }
    });
    println!("type /help for commands; /quit, Ctrl-C or Ctrl-D to leave");
    loop {
        if ended.load(Ordering::SeqCst) {
            break;
        }
        match rl.readline(&prompt) {
            Ok(line) => {
                let _ = rl.add_history_entry(line.as_str());
                match command::parse(&line, false) {
                    Ok(Command::Nothing) => {}
                    Ok(Command::Say(t)) => {
                        sender.say(&t);
                    }
                    Ok(Command::Msg { who, text }) => {
                        if let Err(e) = sender.send_private(&who, &text) {
                            println!(
                                "{}",
                                printer.line(&Event::Error(Failure::new(FailureKind::Command, e)))
                            );
                        }
                    }
                    Ok(Command::Quit) => break,
                    Ok(Command::Help) => println!("{HELP}"),
                    Ok(Command::Wait(_)) | Ok(Command::Expect(_)) => {
                        println!("/wait and /expect are for scripts")
                    }
                    Err(e) => println!("{e}"),
                }
            }
            Err(ReadlineError::Interrupted) | Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("{e}");
                break;
            }
        }
    }
    quitting.store(true, Ordering::SeqCst);
    sender.leave();
    let _ = printer_thread.join();
    0
}
