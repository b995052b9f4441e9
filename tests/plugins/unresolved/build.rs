// Link with lazy binding, as plugins from other toolchains may be: loaded
// with RTLD_LAZY this library would load fine and crash the agent at the
// first call of `nova_agent_test_missing_symbol`. The agent opens with
// RTLD_NOW, so it is refused at load time with the symbol's name.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,lazy");
}
