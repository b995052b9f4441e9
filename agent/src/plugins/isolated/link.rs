//! One running child process, from the agent's side: the socket to it, the
//! requests waiting for it, and who reads it.
//!
//! Two sockets come from the child. On the request socket come the answers
//! and everything a request's command sends (its log, metadata reads, host
//! questions); whoever holds `input` reads it, and a request waiting for its
//! answer holds it itself when it can, routing what is not its own to the
//! request it is for. So an answer wakes the request straight from the
//! socket: no hand-off between threads, and the kernel wakes a socket's
//! reader on the writer's CPU. On the background socket come `init`'s
//! answer and what the plugin's own threads send (log, host questions); a
//! watcher thread reads it, and its end is how the child's end is noticed
//! while no request waits. Whoever reads the end reaps the child, works out
//! why it ended, and gives that cause to every request still waiting: a
//! request never waits on a dead child.
//!
//! Invariant: the process is signalled only while it is not reaped (`kill`
//! and the reaping hold the same lock), so a signal never reaches a process
//! that reused its pid.

use std::collections::HashMap;
use std::io::BufReader;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStderr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use nova_agent_plugin_api::ffi::abi_stable::std_types::RStr;
use nova_agent_plugin_api::ffi::HostBox;
use nova_agent_support::sync::{lock, wait_timeout};

use super::cause;
use super::end::{self, Process, EXIT_GRACE, OUTPUT_GRACE};
use super::wire::{self, FromChild, HostAnswer, HostAsk, Provided, ToChild};

/// What a waiting request hears about itself.
#[derive(Debug)]
pub(crate) enum Event {
    MetadataRead(String),
    MetadataList(String),
    /// The outcome: plugin-api kind (0 is success), text, success answered.
    Done(u8, String, bool),
    /// The child ended before answering; the cause.
    Lost(String),
}

/// How often a request that cannot read the socket itself (another one is
/// reading it) looks whether it may.
const TAKE_OVER_EVERY: Duration = Duration::from_millis(1);

pub(crate) struct Link {
    plugin: String,
    pid: u32,
    fd: RawFd,
    writer: Mutex<UnixStream>,
    pending: Mutex<Pending>,
    process: Mutex<Process>,
    /// The request socket's read half; whoever holds it reads.
    input: Mutex<Input>,
    host: Arc<HostBox>,
    /// Gets `init`'s answer (or why there was none).
    ready: Mutex<Option<Sender<Result<Provided, String>>>>,
    /// A stop was asked for: the end is not a failure.
    stopping: AtomicBool,
    end: Mutex<Option<Option<String>>>,
    ended: Condvar,
}

#[derive(Default)]
struct Pending {
    next_id: u64,
    waiting: HashMap<u64, Sender<Event>>,
    /// Set once the child ended or is being killed: the cause new requests
    /// get at once.
    closed: Option<String>,
}

struct Input {
    stream: BufReader<UnixStream>,
    /// What the end needs; taken by whoever reads it.
    ending: Option<Ending>,
}

struct Ending {
    child: Child,
    output: Receiver<String>,
    memory_limit: u64,
    on_end: Box<dyn FnOnce(Option<String>) + Send>,
}

/// What a just-spawned child comes with.
pub(crate) struct Parts {
    pub(crate) child: Child,
    pub(crate) socket: UnixStream,
    pub(crate) background: UnixStream,
    pub(crate) output: ChildStderr,
    pub(crate) host: Arc<HostBox>,
    pub(crate) memory_limit: u64,
    /// The longest a message to the child may take to write.
    pub(crate) write_timeout: Duration,
    pub(crate) ready: Sender<Result<Provided, String>>,
    /// Told how the child ended (`None`: a stop was asked for), before any
    /// request hears of it.
    pub(crate) on_end: Box<dyn FnOnce(Option<String>) + Send>,
}

/// What reading one message meant for the request reading it.
enum Step {
    Mine(Event),
    Other,
    Ended,
}

impl Link {
    /// Starts the watcher thread for a just-spawned child.
    pub(crate) fn start(plugin: &str, parts: Parts) -> Result<Arc<Link>, String> {
        let writer = parts
            .socket
            .try_clone()
            .map_err(|e| format!("cannot duplicate the socket: {e}"))?;
        // A child that stops reading (stopped, or every thread stuck) must
        // not hold a request past its timeout in a write: the request then
        // times out and the child is killed.
        writer
            .set_write_timeout(Some(parts.write_timeout))
            .map_err(|e| format!("cannot set the socket's write timeout: {e}"))?;
        let pid = parts.child.id();
        let output = end::collect_output(plugin, pid, parts.output);
        let link = Arc::new(Link {
            plugin: plugin.to_owned(),
            pid,
            fd: parts.socket.as_raw_fd(),
            writer: Mutex::new(writer),
            pending: Mutex::default(),
            process: Mutex::default(),
            input: Mutex::new(Input {
                stream: BufReader::new(parts.socket),
                ending: Some(Ending {
                    child: parts.child,
                    output,
                    memory_limit: parts.memory_limit,
                    on_end: parts.on_end,
                }),
            }),
            host: parts.host,
            ready: Mutex::new(Some(parts.ready)),
            stopping: AtomicBool::new(false),
            end: Mutex::new(None),
            ended: Condvar::new(),
        });
        let watcher = Arc::clone(&link);
        let background = BufReader::new(parts.background);
        std::thread::Builder::new()
            .name(format!("plugin {plugin}"))
            .spawn(move || watcher.watch(background))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(link)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the child ended, is being killed, or has exited without its
    /// end having been read yet (a child killed from outside while idle): a
    /// request sent to it now would be lost.
    pub(crate) fn is_closed(&self) -> bool {
        if lock(&self.pending).closed.is_some() {
            return true;
        }
        let process = lock(&self.process);
        if process.reaped {
            return true;
        }
        // SAFETY: waitid fills the zeroed siginfo; WNOWAIT leaves the child
        // for the end to reap, and holding `process` keeps it unreaped.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let found = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is set by a successful waitid (0: still running).
        found == 0 && unsafe { info.si_pid() } != 0
    }

    pub(crate) fn send(&self, message: &ToChild) -> std::io::Result<()> {
        wire::write(&mut *lock(&self.writer), message)
    }

    /// Sends a request; its events come from [`Link::next_event`].
    /// `Err(cause)` when the child has ended.
    pub(crate) fn run(
        &self,
        command: &str,
        arguments: &str,
        channel: &str,
    ) -> Result<(u64, Receiver<Event>), String> {
        let (sender, events) = mpsc::channel();
        let id = {
            let mut pending = lock(&self.pending);
            if let Some(cause) = &pending.closed {
                return Err(cause.clone());
            }
            pending.next_id += 1;
            let id = pending.next_id;
            pending.waiting.insert(id, sender);
            id
        };
        let sent = self.send(&ToChild::Run {
            id,
            command: command.to_owned(),
            arguments: arguments.to_owned(),
            channel: channel.to_owned(),
        });
        if let Err(e) = sent {
            // Whoever reads the end gives the request its cause.
            tracing::debug!(plugin = %self.plugin, "cannot send a request: {e}");
        }
        Ok((id, events))
    }

    /// The next event of request `id`, reading the socket itself whenever
    /// no one else does; `None` once `deadline` passed.
    pub(crate) fn next_event(
        &self,
        id: u64,
        events: &Receiver<Event>,
        deadline: Instant,
    ) -> Option<Event> {
        loop {
            match events.try_recv() {
                Ok(event) => return Some(event),
                Err(TryRecvError::Disconnected) => return Some(self.lost()),
                Err(TryRecvError::Empty) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if let Some(mut input) = self.try_input() {
                // The reader before may have routed this request's event
                // to its queue; and after the end, its `Lost` is there.
                match events.try_recv() {
                    Ok(event) => return Some(event),
                    Err(TryRecvError::Disconnected) => return Some(self.lost()),
                    Err(TryRecvError::Empty) if input.ending.is_none() => return Some(self.lost()),
                    Err(TryRecvError::Empty) => {}
                }
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !self.readable(&input, Some(left)) {
                        return None;
                    }
                    match self.read_one(&mut input, Some(id)) {
                        Step::Mine(event) => {
                            self.drain_buffered(&mut input);
                            return Some(event);
                        }
                        Step::Other => {}
                        Step::Ended => break,
                    }
                }
                continue;
            }
            match events.recv_timeout(left.min(TAKE_OVER_EVERY)) {
                Ok(event) => return Some(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Some(self.lost()),
            }
        }
    }

    fn lost(&self) -> Event {
        let cause = lock(&self.pending).closed.clone();
        Event::Lost(cause.unwrap_or_else(|| format!("plugin {} ended", self.plugin)))
    }

    fn try_input(&self) -> Option<MutexGuard<'_, Input>> {
        match self.input.try_lock() {
            Ok(input) => Some(input),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Forgets a request that stopped waiting (it timed out).
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.pending).waiting.remove(&id);
    }

    /// Kills the child, once; `reason` becomes the cause of its end.
    pub(crate) fn kill(&self, reason: String) {
        let mut process = lock(&self.process);
        if process.reaped {
            return;
        }
        lock(&self.pending)
            .closed
            .get_or_insert_with(|| reason.clone());
        process.killed_for.get_or_insert(reason);
        // SAFETY: kill(2) on a child not reaped, so the pid is still ours.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
    }

    /// Asks the child to run the plugin's shutdown hook and exit; kills it
    /// after `grace`. Returns once it has been reaped.
    pub(crate) fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.send(&ToChild::Stop);
        if !self.wait_end(grace) {
            self.kill(format!(
                "plugin {} did not stop within {}",
                self.plugin,
                cause::seconds(grace)
            ));
            self.wait_end(EXIT_GRACE + OUTPUT_GRACE + Duration::from_secs(1));
        }
    }

    /// Waits for the end to have been read and handled; `true` once it has.
    pub(crate) fn wait_end(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut end = lock(&self.end);
        while end.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            end = wait_timeout(&self.ended, end, left);
        }
        true
    }

    /// The watcher: reads the background socket until its end, then reads
    /// what is left on the request socket and handles the end.
    fn watch(self: Arc<Self>, mut background: BufReader<UnixStream>) {
        loop {
            match wire::read::<FromChild>(&mut background) {
                Ok(Some(message)) => {
                    // A request's message has no business here: dropped.
                    let _ = self.route(message, None);
                }
                Ok(None) => break,
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.kill(format!(
                            "plugin {} sent the agent a malformed message ({e})",
                            self.plugin
                        ));
                    }
                    break;
                }
            }
        }
        let mut input = lock(&self.input);
        while input.ending.is_some() && self.readable(&input, Some(Duration::ZERO)) {
            if let Step::Ended = self.read_one(&mut input, None) {
                return;
            }
        }
        self.finish(&mut input);
    }

    /// Whether a message (or the end) can be read within `timeout`.
    fn readable(&self, input: &Input, timeout: Option<Duration>) -> bool {
        !input.stream.buffer().is_empty() || poll_readable(self.fd, timeout)
    }

    /// Handles what is already buffered, so that nothing waits in a buffer
    /// nobody watches once this reader lets go.
    fn drain_buffered(&self, input: &mut Input) {
        while !input.stream.buffer().is_empty() {
            if let Step::Ended = self.read_one(input, None) {
                return;
            }
        }
    }

    /// Reads one message and routes it; what it is for request `me`.
    fn read_one(&self, input: &mut Input, me: Option<u64>) -> Step {
        match wire::read::<FromChild>(&mut input.stream) {
            Ok(Some(message)) => match self.route(message, me) {
                Some(event) => Step::Mine(event),
                None => Step::Other,
            },
            Ok(None) => {
                self.finish(input);
                Step::Ended
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    self.kill(format!(
                        "plugin {} sent the agent a malformed message ({e})",
                        self.plugin
                    ));
                }
                self.finish(input);
                Step::Ended
            }
        }
    }

    fn route(&self, message: FromChild, me: Option<u64>) -> Option<Event> {
        let (id, event) = match message {
            FromChild::Ready(provided) => {
                if let Some(ready) = lock(&self.ready).take() {
                    let _ = ready.send(Ok(provided));
                }
                return None;
            }
            FromChild::Failed { reason } => {
                if let Some(ready) = lock(&self.ready).take() {
                    let _ = ready.send(Err(reason));
                }
                return None;
            }
            FromChild::Log {
                level,
                target,
                message,
            } => {
                self.host
                    .log(level, RStr::from_str(&target), RStr::from_str(&message));
                return None;
            }
            FromChild::Host { call, ask } => {
                let answer = answer(&self.host, ask);
                let _ = self.send(&ToChild::Host { call, answer });
                return None;
            }
            FromChild::MetadataRead { id, key } => (id, Event::MetadataRead(key)),
            FromChild::MetadataList { id, dir } => (id, Event::MetadataList(dir)),
            FromChild::Done {
                id,
                kind,
                text,
                success_response,
            } => {
                let waiting = lock(&self.pending).waiting.remove(&id);
                let event = Event::Done(kind, text, success_response);
                if me == Some(id) {
                    return Some(event);
                }
                if let Some(request) = waiting {
                    let _ = request.send(event);
                }
                return None;
            }
        };
        if me == Some(id) {
            return Some(event);
        }
        let list = matches!(event, Event::MetadataList(_));
        let delivered = lock(&self.pending)
            .waiting
            .get(&id)
            .is_some_and(|request| request.send(event).is_ok());
        if !delivered {
            // The request gave up (timed out): answer for it, or the
            // command would wait for ever.
            let gone = "the request is no longer waiting".to_owned();
            let reply = if list {
                ToChild::MetadataList {
                    id,
                    result: Err(gone),
                }
            } else {
                ToChild::MetadataRead {
                    id,
                    result: Err(gone),
                }
            };
            let _ = self.send(&reply);
        }
        None
    }

    /// The child's stream ended: reap it, say why, and give every request
    /// still waiting the cause. Once per child; the supervisor hears first.
    fn finish(&self, input: &mut Input) {
        let Some(ending) = input.ending.take() else {
            return;
        };
        let Ending {
            mut child,
            output,
            memory_limit,
            on_end,
        } = ending;
        let status = end::reap(&self.plugin, &mut child, &self.process);
        let output = output.recv_timeout(OUTPUT_GRACE).unwrap_or_default();
        let killed_for = lock(&self.process).killed_for.clone();
        let cause = killed_for
            .unwrap_or_else(|| cause::describe(&self.plugin, status, &output, memory_limit));
        let asked = self.stopping.load(Ordering::SeqCst) && status.is_some_and(|s| s.success());
        on_end((!asked).then(|| cause.clone()));
        let waiting = {
            let mut pending = lock(&self.pending);
            pending.closed = Some(cause.clone());
            std::mem::take(&mut pending.waiting)
        };
        for (_, request) in waiting {
            let _ = request.send(Event::Lost(cause.clone()));
        }
        if let Some(ready) = lock(&self.ready).take() {
            let _ = ready.send(Err(cause.clone()));
        }
        *lock(&self.end) = Some((!asked).then_some(cause));
        self.ended.notify_all();
    }
}

/// Waits until `fd` has something to read, or its peer is gone; `None`
/// waits without limit.
fn poll_readable(fd: RawFd, timeout: Option<Duration>) -> bool {
    let millis = timeout.map_or(-1, |t| {
        i32::try_from(t.as_millis().max(u128::from(!t.is_zero()))).unwrap_or(i32::MAX)
    });
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, for a descriptor the link owns.
        match unsafe { libc::poll(&mut poll, 1, millis) } {
            -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            n => return n > 0,
        }
    }
}

/// Answers a plugin's question to its host, as the in-process host would.
fn answer(host: &HostBox, ask: HostAsk) -> HostAnswer {
    match ask {
        HostAsk::Commands => HostAnswer::Commands {
            list: host
                .commands()
                .iter()
                .map(|c| (c.name.to_string(), c.enabled, c.success_response))
                .collect(),
        },
        HostAsk::SetGate { gate, closed } => HostAnswer::SetGate {
            result: host
                .set_gate(RStr::from_str(&gate), closed)
                .into_result()
                .map_err(|e| e.to_string()),
        },
        HostAsk::GateClosed { gate } => HostAnswer::GateClosed {
            closed: host.gate_closed(RStr::from_str(&gate)),
        },
    }
}
