//! Test fixture `crash-fixture`: each command but `ok` ends or starves the
//! process it runs in, the way a vendor's plugin (or a C library under it)
//! can. With the plugin listed in `[isolation] process` only its child
//! process suffers; without, the agent does.
//!
//! | command    | does                                           |
//! |------------|------------------------------------------------|
//! | `segfault` | writes through a null pointer                  |
//! | `abort`    | calls `std::process::abort()`                  |
//! | `exit`     | calls `libc::_exit(3)`                         |
//! | `oom`      | allocates and touches memory until it fails    |
//! | `spin`     | loops forever on the CPU                       |
//! | `stack`    | recurses without bound                         |
//! | `ok`       | answers "0" with message "fine"                |
//!
//! `ok` also reports its process id when asked (`"pid"` as its value), so
//! tests can tell which process served it.

use std::hint::black_box;

use nova_agent_plugin_api::serde_json::{json, Value};
use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};

struct Segfault;

impl Command for Segfault {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        tracing::warn!("segfault: writing through a null pointer");
        let null: *mut u64 = black_box(std::ptr::null_mut());
        // SAFETY: none; crashing is this command's purpose.
        unsafe { null.write_volatile(0x5e6f_a017_u64.wrapping_add(black_box(0))) };
        Ok(json!("still alive"))
    }
}

struct Abort;

impl Command for Abort {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        tracing::warn!("abort: calling std::process::abort()");
        std::process::abort()
    }
}

struct Exit;

impl Command for Exit {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        tracing::warn!("exit: calling _exit(3)");
        // SAFETY: ends the process, as a C library calling _exit would.
        unsafe { libc::_exit(3) }
    }
}

struct Oom;

impl Command for Oom {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        tracing::warn!("oom: allocating until allocation fails");
        const CHUNK: usize = 16 << 20;
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            // Touch every page so the memory is really used, not just reserved.
            for page in chunk.iter_mut().step_by(4096) {
                // SAFETY: `page` is a valid, exclusive reference.
                unsafe { std::ptr::write_volatile(page, 1) };
            }
            kept.push(black_box(chunk));
        }
    }
}

struct Spin;

impl Command for Spin {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        tracing::warn!("spin: looping forever");
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }
}

struct Stack;

/// Recurses until the stack runs out; the frame holds a buffer so each call
/// really uses stack, and `black_box` keeps the compiler from turning the
/// recursion into a loop.
#[inline(never)]
fn deeper(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    if black_box(depth) == u64::MAX {
        return frame[0];
    }
    deeper(depth + 1).wrapping_add(black_box(frame[7]))
}

impl Command for Stack {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        tracing::warn!("stack: recursing without bound");
        Ok(json!(deeper(black_box(0))))
    }
}

struct Ok_;

impl Command for Ok_ {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        if call.arguments() == r#""pid""# {
            return Ok(json!(std::process::id().to_string()));
        }
        Ok(json!("fine"))
    }
}

fn init(_host: Host, _config: Value) -> Result<Provides, PluginError> {
    Ok(Provides::new()
        .command("segfault", Segfault)
        .command("abort", Abort)
        .command("exit", Exit)
        .command("oom", Oom)
        .command("spin", Spin)
        .command("stack", Stack)
        .command("ok", Ok_))
}

export_plugin! {
    name: "crash-fixture",
    description: "test fixture: commands that crash or starve their process, and `ok`",
    provides: { commands: ["segfault", "abort", "exit", "oom", "spin", "stack", "ok"] },
    init: init,
}
