//! `nova-agent plugin-host <plugin>`: the child side of an isolated plugin.
//! Started by the agent only (see `spawn`), with its socket at fd 3 and the
//! checked library at fd 4; it reads nothing else (no config, no plugin
//! directory) and logs only through the agent.
//!
//! Threads take turns reading the agent's messages (leader/follower): the
//! one that reads a request runs it itself, after making sure another
//! thread reads next (starting one if none is waiting), so a request is
//! served by the thread the socket woke, a slow command does not hold the
//! others, and a metadata read waits only for its own answer. `init` runs on
//! a thread of its own (it may ask the host questions, whose answers the
//! reading thread routes).

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use nova_agent_plugin_api::ffi::abi_stable::sabi_trait::TD_Opaque;
use nova_agent_plugin_api::ffi::abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
use nova_agent_plugin_api::ffi::{
    CommandBox, FfiCall, FfiCall_TO, FfiCommandInfo, FfiError, FfiHost, FfiHost_TO, FfiResult,
    Instance, LifecycleBox,
};
use nova_agent_plugin_api::ErrorKind;
use nova_agent_support::sync::lock;

use super::spawn::{BACKGROUND_FD, LIBRARY_FD, SOCKET_FD};
use super::wire::{self, FromChild, HostAnswer, HostAsk, Provided, Start, ToChild, WireGate};
use crate::plugins::loader;

/// The plugin's commands, once `init` returned.
struct Loaded {
    commands: HashMap<String, CommandBox>,
    lifecycle: LifecycleBox,
}

/// What the child's threads share.
struct Shared {
    /// The request socket's write half: answers, and what a request's
    /// command sends.
    writer: Mutex<UnixStream>,
    /// What `init` and the plugin's own threads send.
    background: Mutex<UnixStream>,
    /// Requests waiting for the answer to a metadata read, by request id.
    requests: Mutex<HashMap<u64, Sender<ToChild>>>,
    /// Host questions waiting for their answer, by call number.
    host_calls: Mutex<HashMap<u64, Sender<HostAnswer>>>,
    next_call: AtomicU64,
    loaded: OnceLock<Loaded>,
    /// The read half; the thread holding it reads the next message.
    reader: Mutex<BufReader<UnixStream>>,
    /// Threads waiting for `reader` or reading: if none is left when one
    /// takes a request, it starts another before running the request.
    readers: AtomicUsize,
}

thread_local! {
    /// Set on a thread while it runs a request: what it sends goes with the
    /// request's answers (see `spawn::BACKGROUND_FD`).
    static IN_REQUEST: Cell<bool> = const { Cell::new(false) };
}

impl Shared {
    /// Sends over the request socket when this thread runs a request, else
    /// over the background one.
    fn send(&self, message: &FromChild) {
        let socket = if IN_REQUEST.with(Cell::get) {
            &self.writer
        } else {
            &self.background
        };
        if wire::write(&mut *lock(socket), message).is_err() {
            // The agent is gone: nothing is left to serve.
            // SAFETY: _exit ends the process without running anything else.
            unsafe { libc::_exit(0) };
        }
    }

    fn ask(&self, ask: HostAsk) -> Option<HostAnswer> {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (sender, answer) = mpsc::channel();
        lock(&self.host_calls).insert(call, sender);
        self.send(&FromChild::Host { call, ask });
        answer.recv().ok()
    }
}

/// Runs the child; the exit code says how it ended when the agent asked it
/// to stop or vanished (a crash never gets here).
pub(crate) fn main(plugin: &str) -> ExitCode {
    let mode = |fd| {
        // SAFETY: fstat writes into the zeroed struct it is given.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        (unsafe { libc::fstat(fd, &mut stat) } == 0).then_some(stat.st_mode & libc::S_IFMT)
    };
    if mode(SOCKET_FD) != Some(libc::S_IFSOCK)
        || mode(BACKGROUND_FD) != Some(libc::S_IFSOCK)
        || mode(LIBRARY_FD).is_none()
    {
        eprintln!("nova-agent plugin-host: only the agent starts this, for plugin {plugin}");
        return ExitCode::from(2);
    }
    for fd in [SOCKET_FD, LIBRARY_FD, BACKGROUND_FD] {
        // A process a command starts must not inherit them: the agent would
        // not see this one end while it lives.
        // SAFETY: fcntl on descriptors this process holds.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: the agent handed over these descriptors for this process to own.
    let (socket, library, background) = unsafe {
        (
            UnixStream::from_raw_fd(SOCKET_FD),
            File::from_raw_fd(LIBRARY_FD),
            UnixStream::from_raw_fd(BACKGROUND_FD),
        )
    };
    let Ok(writer) = socket.try_clone() else {
        return ExitCode::from(2);
    };
    let mut input = BufReader::new(socket);
    let start: Start = match wire::read(&mut input) {
        Ok(Some(ToChild::Start(start))) if start.plugin == plugin => start,
        _ => return ExitCode::from(2),
    };
    let shared = Arc::new(Shared {
        writer: Mutex::new(writer),
        background: Mutex::new(background),
        requests: Mutex::default(),
        host_calls: Mutex::default(),
        next_call: AtomicU64::new(1),
        loaded: OnceLock::new(),
        reader: Mutex::new(input),
        readers: AtomicUsize::new(0),
    });
    let initialising = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name("init".into())
        .spawn(move || initialise(&initialising, start, library));
    if spawned.is_err() {
        return ExitCode::from(2);
    }
    serve(&shared)
}

/// One thread's turns: read a message; run a request it read, or route
/// anything else; again. Ends the process at `Stop` or when the agent is
/// gone.
fn serve(shared: &Arc<Shared>) -> ! {
    loop {
        shared.readers.fetch_add(1, Ordering::SeqCst);
        let message = wire::read::<ToChild>(&mut *lock(&shared.reader));
        let others = shared.readers.fetch_sub(1, Ordering::SeqCst) - 1;
        match message {
            Ok(Some(ToChild::Run {
                id,
                command,
                arguments,
                channel,
            })) => {
                if others == 0 {
                    let next = Arc::clone(shared);
                    // Without a thread to spare, the next message waits
                    // for this request to end.
                    let _ = std::thread::Builder::new()
                        .name("request".into())
                        .spawn(move || serve(&next));
                }
                run(shared, id, &command, &arguments, channel);
            }
            Ok(Some(ToChild::Stop)) => {
                if let Some(loaded) = shared.loaded.get() {
                    loaded.lifecycle.shutdown();
                }
                std::process::exit(0);
            }
            Ok(Some(message)) => route(shared, message),
            // The agent is gone, or talks nonsense: stop at once, without
            // running anything of the plugin's.
            // SAFETY: _exit ends the process without running anything else.
            Ok(None) | Err(_) => unsafe { libc::_exit(0) },
        }
    }
}

/// Runs one request on this thread and answers it.
fn run(shared: &Arc<Shared>, id: u64, command: &str, arguments: &str, channel: String) {
    IN_REQUEST.with(|r| r.set(true));
    let (sender, answers) = mpsc::channel();
    lock(&shared.requests).insert(id, sender);
    let call = RemoteCall {
        id,
        channel,
        answers: Mutex::new(answers),
        shared: Arc::clone(shared),
    };
    let outcome = match shared.loaded.get().and_then(|l| l.commands.get(command)) {
        Some(object) => object.run(
            FfiCall_TO::from_ptr(&call, TD_Opaque),
            RStr::from_str(arguments),
        ),
        None => nova_agent_plugin_api::ffi::FfiOutcome {
            kind: ErrorKind::UnknownCommand.to_u8(),
            text: RString::new(),
            success_response: true,
        },
    };
    lock(&shared.requests).remove(&id);
    shared.send(&FromChild::Done {
        id,
        kind: outcome.kind,
        text: outcome.text.into(),
        success_response: outcome.success_response,
    });
    IN_REQUEST.with(|r| r.set(false));
}

fn route(shared: &Arc<Shared>, message: ToChild) {
    match message {
        ToChild::MetadataRead { id, .. } | ToChild::MetadataList { id, .. } => {
            if let Some(request) = lock(&shared.requests).get(&id) {
                let _ = request.send(message);
            }
        }
        ToChild::Host { call, answer } => {
            if let Some(waiting) = lock(&shared.host_calls).remove(&call) {
                let _ = waiting.send(answer);
            }
        }
        ToChild::Start(_) | ToChild::Run { .. } | ToChild::Stop => {}
    }
}

/// Loads the library with the agent's loader (the ABI and manifest checks),
/// runs `init`, and says what it provides.
fn initialise(shared: &Arc<Shared>, start: Start, library: File) {
    let (root, manifest) = match loader::open_descriptor(library, Path::new(&start.file)) {
        Ok(opened) => opened,
        Err(reason) => {
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            let reason = format!("{reason} (in its isolated process, as uid {uid})");
            return shared.send(&FromChild::Failed { reason });
        }
    };
    if manifest.name != start.plugin {
        return shared.send(&FromChild::Failed {
            reason: format!(
                "the library is plugin '{}', not '{}'",
                manifest.name, start.plugin
            ),
        });
    }
    let host = RemoteHost {
        start: start.clone(),
        shared: Arc::clone(shared),
    };
    let host = FfiHost_TO::from_value(host, TD_Opaque);
    let instance: Instance = match (root.init())(host, RStr::from_str(&start.config_json)) {
        RResult::ROk(instance) => instance,
        RResult::RErr(e) => {
            return shared.send(&FromChild::Failed {
                reason: format!("init failed: {e}"),
            })
        }
    };
    let provided = Provided {
        commands: instance
            .commands
            .iter()
            .map(|c| (c.name.to_string(), c.success_response))
            .collect(),
        gates: instance
            .gates
            .iter()
            .map(|g| WireGate {
                name: g.name.to_string(),
                reason: g.reason.to_string(),
                allow: g.allow.iter().map(|a| a.to_string()).collect(),
            })
            .collect(),
        exchanges: instance.exchanges.iter().map(|t| t.0.to_string()).collect(),
        parsers: instance.parsers.iter().map(|t| t.0.to_string()).collect(),
    };
    let Instance {
        commands,
        lifecycle,
        ..
    } = instance;
    let commands = commands
        .into_iter()
        .map(|c| (c.name.into_string(), c.object))
        .collect();
    if shared
        .loaded
        .set(Loaded {
            commands,
            lifecycle,
        })
        .is_ok()
    {
        shared.send(&FromChild::Ready(provided));
    }
}

/// The host, as an isolated plugin sees it: what is fixed comes from the
/// start message, the rest is asked of the agent.
struct RemoteHost {
    start: Start,
    shared: Arc<Shared>,
}

impl FfiHost for RemoteHost {
    fn log_enabled(&self, level: u8, _target: RStr<'_>) -> bool {
        level <= self.start.max_log_level
    }

    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>) {
        if level <= self.start.max_log_level {
            self.shared.send(&FromChild::Log {
                level,
                target: target.into(),
                message: message.into(),
            });
        }
    }

    fn agent_version(&self) -> RString {
        self.start.agent_version.as_str().into()
    }

    fn commands(&self) -> RVec<FfiCommandInfo> {
        match self.shared.ask(HostAsk::Commands) {
            Some(HostAnswer::Commands { list }) => list
                .into_iter()
                .map(|(name, enabled, success_response)| FfiCommandInfo {
                    name: name.into(),
                    enabled,
                    success_response,
                })
                .collect(),
            _ => RVec::new(),
        }
    }

    fn root(&self) -> RString {
        self.start.root.as_str().into()
    }

    fn apply(&self) -> bool {
        self.start.apply
    }

    fn set_gate(&self, gate: RStr<'_>, closed: bool) -> FfiResult<()> {
        let ask = HostAsk::SetGate {
            gate: gate.into(),
            closed,
        };
        match self.shared.ask(ask) {
            Some(HostAnswer::SetGate { result: Ok(()) }) => RResult::ROk(()),
            Some(HostAnswer::SetGate { result: Err(e) }) => {
                RResult::RErr(FfiError::Failed(e.into()))
            }
            _ => RResult::RErr(FfiError::Failed("the agent did not answer".into())),
        }
    }

    fn gate_closed(&self, gate: RStr<'_>) -> bool {
        let ask = HostAsk::GateClosed { gate: gate.into() };
        matches!(
            self.shared.ask(ask),
            Some(HostAnswer::GateClosed { closed: true })
        )
    }

    fn state_dir(&self) -> RString {
        self.start.state_dir.as_str().into()
    }
}

/// One request, as an isolated command sees it.
struct RemoteCall {
    id: u64,
    channel: String,
    answers: Mutex<Receiver<ToChild>>,
    shared: Arc<Shared>,
}

impl RemoteCall {
    fn answer(&self) -> Option<ToChild> {
        lock(&self.answers).recv().ok()
    }
}

impl FfiCall for RemoteCall {
    fn channel(&self) -> RString {
        self.channel.as_str().into()
    }

    fn metadata_read(&self, key: RStr<'_>) -> FfiResult<ROption<RString>> {
        self.shared.send(&FromChild::MetadataRead {
            id: self.id,
            key: key.into(),
        });
        match self.answer() {
            Some(ToChild::MetadataRead {
                result: Ok(value), ..
            }) => RResult::ROk(value.map(RString::from).into()),
            Some(ToChild::MetadataRead { result: Err(e), .. }) => {
                RResult::RErr(FfiError::Failed(e.into()))
            }
            _ => RResult::RErr(FfiError::Failed("the agent did not answer".into())),
        }
    }

    fn metadata_list(&self, dir: RStr<'_>) -> FfiResult<RVec<RString>> {
        self.shared.send(&FromChild::MetadataList {
            id: self.id,
            dir: dir.into(),
        });
        match self.answer() {
            Some(ToChild::MetadataList {
                result: Ok(names), ..
            }) => RResult::ROk(names.into_iter().map(RString::from).collect()),
            Some(ToChild::MetadataList { result: Err(e), .. }) => {
                RResult::RErr(FfiError::Failed(e.into()))
            }
            _ => RResult::RErr(FfiError::Failed("the agent did not answer".into())),
        }
    }
}
