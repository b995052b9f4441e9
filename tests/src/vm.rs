//! A throwaway QEMU guest for the end-to-end QGA test: Debian's stock cloud
//! kernel, an initramfs holding static busybox, the virtio modules, our
//! agent, its plugins and the libraries they link, and a
//! `virtserialport` named `org.qemu.guest_agent.0` whose host side is a unix
//! socket, as libvirt sets it up.
//!
//! The kernel and busybox come from `apt-get download` (never installed on
//! this machine), unpacked once into `target/vm-cache`. KVM is used when it
//! really boots the kernel (some machines have a `/dev/kvm` that opens but
//! cannot run it), TCG otherwise. The VM is killed when its [`Vm`] drops.
//!
//! Not here: what the guest is asked (tests/tests/qga_vm.rs), and the
//! client, which is libvirt's part ([`libvirt`]).

pub mod initramfs;
pub mod libvirt;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use initramfs::{modules_in_load_order, Initramfs};

/// The guest's host name, set by its init.
pub const GUEST_HOST_NAME: &str = "nova-kvm-guest";
/// A dummy `eth0` with this address, `192.0.2.10/24` and an alias
/// `eth0:1` holding `192.0.2.11/24` (folded into eth0 by QGA).
pub const GUEST_ETH0_MAC: &str = "02:00:00:00:00:0a";
/// The guest's `/etc/os-release`.
pub const GUEST_OS_RELEASE: &str =
    "PRETTY_NAME=\"Nova Test Guest 1.0\"\nNAME=\"Nova Test Guest\"\n\
     VERSION_ID=\"1.0\"\nVERSION=\"1.0 (vm)\"\nID=novatest\n";
/// The kernel modules the init loads (their dependencies come first).
const MODULES: [&str; 3] = ["virtio_pci", "virtio_console", "dummy"];
/// What the init prints when the kernel command line asks for the probe.
const PROBE_OK: &str = "nova-vm: probe ok";
/// Printed by the init once the port's device exists, before the agent runs.
pub const PORT_READY: &str = "nova-vm: port ready";
const PORT_NAME: &str = "org.qemu.guest_agent.0";

/// `target/vm-cache` (next to the profile directories).
pub fn cache_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).expect("target directory");
    target.join("vm-cache")
}

/// `qemu-system-x86_64` on the PATH.
pub fn find_qemu() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("qemu-system-x86_64"))
        .find(|candidate| candidate.is_file())
}

/// The unpacked kernel package and busybox.
pub struct GuestKernel {
    /// e.g. `6.1.0-57-cloud-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// The package's `lib/modules/<release>`.
    pub modules: PathBuf,
    pub busybox: PathBuf,
}

impl GuestKernel {
    /// From the cache, else downloaded and unpacked there. The error says why
    /// there is no kernel (a reason to skip).
    pub fn fetch() -> Result<GuestKernel, String> {
        let cache = cache_dir();
        let ready = cache.join("guest");
        if !ready.join("release").is_file() {
            std::fs::create_dir_all(&cache)
                .map_err(|e| format!("creating {}: {e}", cache.display()))?;
            let staging = cache.join(format!("guest.{}.tmp", std::process::id()));
            let _ = std::fs::remove_dir_all(&staging);
            let built = download_guest(&staging);
            if let Err(e) = built {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
            // Another test process may have won the race: keep its copy.
            if std::fs::rename(&staging, &ready).is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
        }
        let release = std::fs::read_to_string(ready.join("release"))
            .map_err(|e| format!("reading the cached kernel release: {e}"))?;
        Ok(GuestKernel {
            release: release.trim().to_owned(),
            vmlinuz: ready.join("vmlinuz"),
            modules: ready.join("modules"),
            busybox: ready.join("busybox"),
        })
    }
}

/// `apt-get download` linux-image-cloud-amd64, the versioned image it depends
/// on, and busybox-static into `dir`; unpacks what the guest needs.
fn download_guest(dir: &Path) -> Result<(), String> {
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| e.to_string())?;
    let meta = apt_download(&debs, "linux-image-cloud-amd64")?;
    let depends = run(Command::new("dpkg-deb").arg("-f").arg(&meta).arg("Depends"))?;
    let image = depends
        .split([',', '|'])
        .filter_map(|alt| alt.split_whitespace().next())
        .find(|name| name.starts_with("linux-image-"))
        .ok_or_else(|| format!("linux-image-cloud-amd64 depends on no kernel: {depends}"))?
        .to_owned();
    let kernel_deb = apt_download(&debs, &image)?;
    let busybox_deb = apt_download(&debs, "busybox-static")?;

    let unpacked = dir.join("unpacked");
    for deb in [&kernel_deb, &busybox_deb] {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))?;
    }
    let boot = std::fs::read_dir(unpacked.join("boot")).map_err(|e| format!("{image}: {e}"))?;
    let vmlinuz = boot
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or_else(|| format!("{image} has no /boot/vmlinuz-*"))?;
    let release = vmlinuz.file_name().unwrap().to_str().unwrap()["vmlinuz-".len()..].to_owned();
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| unpacked.join(d).join(&release))
        .find(|d| d.is_dir())
        .ok_or_else(|| format!("{image} has no modules for {release}"))?;
    let busybox = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| unpacked.join(p))
        .find(|p| p.is_file())
        .ok_or("busybox-static has no bin/busybox")?;

    let moves = [
        (vmlinuz, dir.join("vmlinuz")),
        (modules, dir.join("modules")),
        (busybox, dir.join("busybox")),
    ];
    for (from, to) in moves {
        std::fs::rename(&from, &to).map_err(|e| format!("moving {}: {e}", from.display()))?;
    }
    std::fs::write(dir.join("release"), &release).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&unpacked);
    let _ = std::fs::remove_dir_all(&debs);
    Ok(())
}

/// `apt-get download <package>` in `dir`; the `.deb` it left.
fn apt_download(dir: &Path, package: &str) -> Result<PathBuf, String> {
    run(Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(dir))?;
    let prefix = format!("{package}_");
    std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .ok_or_else(|| format!("apt-get download {package} left no .deb"))
}

/// Runs a tool to completion; its stdout, or an error naming it.
fn run(command: &mut Command) -> Result<String, String> {
    let shown = format!("{command:?}");
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What goes into the guest besides the kernel's part.
pub struct GuestAgent<'a> {
    pub agent: &'a Path,
    pub plugins: &'a [PathBuf],
    /// The agent's config file, `/etc/nova-agent/agent.toml` in the guest.
    pub config: &'a str,
}

/// Writes the initramfs to `out`: busybox (its applets linked by the init),
/// the modules, the agent at `/usr/bin/nova-agent`, its plugins in
/// `/usr/lib/nova-agent/plugins`, the libraries `ldd` names, and `/init`.
pub fn build_initramfs(kernel: &GuestKernel, guest: &GuestAgent, out: &Path) -> Result<(), String> {
    let mut image = Initramfs::new();
    image.copy("/bin/busybox", 0o755, &kernel.busybox)?;
    let modules = modules_in_load_order(&kernel.modules, &MODULES)?;
    let mut names = Vec::new();
    for ko in &modules {
        let file = ko.file_name().unwrap().to_str().unwrap();
        image.copy(&format!("/lib/modules/{file}"), 0o644, ko)?;
        names.push(file.to_owned());
    }

    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut binaries = vec![(guest.agent, "/usr/bin/nova-agent".to_owned(), 0o755)];
    for so in guest.plugins {
        let name = so.file_name().unwrap().to_str().unwrap();
        binaries.push((so, format!("/usr/lib/nova-agent/plugins/{name}"), 0o644));
    }
    let mut libraries = Vec::new();
    for (source, guest_path, mode) in &binaries {
        image.copy(guest_path, *mode, &stripped(source, scratch.path()))?;
        for lib in linked_libraries(source)? {
            if !libraries.contains(&lib) {
                libraries.push(lib);
            }
        }
    }
    for lib in &libraries {
        image.copy(lib.to_str().expect("UTF-8 path"), 0o755, lib)?;
    }
    image.file("/etc/nova-agent/agent.toml", 0o644, guest.config.into());
    image.file("/etc/os-release", 0o644, GUEST_OS_RELEASE.into());
    for dir in ["/proc", "/sys", "/dev", "/run", "/var/lib/nova-agent"] {
        image.dir(dir, 0o755);
    }
    image.dir("/tmp", 0o1777);
    let library_dirs: Vec<String> = libraries
        .iter()
        .filter_map(|l| l.parent()?.to_str().map(str::to_owned))
        .collect();
    image.file("/init", 0o755, init_script(&names, &library_dirs).into());
    std::fs::write(out, image.to_bytes()).map_err(|e| format!("writing {}: {e}", out.display()))
}

/// A copy of `file` without debug info (it is most of a debug build's
/// size); the file itself when `strip` is not there.
fn stripped(file: &Path, scratch: &Path) -> PathBuf {
    let out = scratch.join(file.file_name().unwrap());
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(file)
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => out,
        _ => file.to_path_buf(),
    }
}

/// The shared libraries and the loader `ldd` lists for `file`, as paths on
/// this machine (the same paths in the guest).
fn linked_libraries(file: &Path) -> Result<Vec<PathBuf>, String> {
    let out = run(Command::new("ldd").arg(file))?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// `/init`: mounts, modules, the test guest's identity and network, the
/// port's `/dev/virtio-ports` link as udev would make it, then the agent.
fn init_script(modules: &[String], library_dirs: &[String]) -> String {
    let mut dirs = library_dirs.to_vec();
    dirs.sort();
    dirs.dedup();
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in {modules}; do insmod /lib/modules/$m || echo "nova-vm: insmod $m failed"; done
hostname {host}
ip link set lo up
ip link add eth0 type dummy
ip link set eth0 address {mac}
ip addr add 192.0.2.10/24 dev eth0
ip addr add 192.0.2.11/24 dev eth0 label eth0:1
ip link set eth0 up
if grep -q nova_probe /proc/cmdline; then echo "{probe_ok}"; poweroff -f; fi
# No udev: wait for the port the host side announces, link it by name.
tries=0
until grep -qx {port} /sys/class/virtio-ports/*/name 2>/dev/null; do
    tries=$((tries + 1))
    if [ $tries -gt 200 ]; then echo "nova-vm: no virtio port {port}"; poweroff -f; fi
    sleep 0.1
done
mkdir -p /dev/virtio-ports
for f in /sys/class/virtio-ports/*/name; do
    d=${{f%/name}}
    ln -s ../${{d##*/}} /dev/virtio-ports/$(cat $f)
done
echo "{port_ready}: $(ls -l /dev/virtio-ports/ | grep {port})"
mkdir -p /run/nova-agent
export LD_LIBRARY_PATH={lib_path}
RUST_LOG=debug /usr/bin/nova-agent run --config /etc/nova-agent/agent.toml
echo "nova-vm: the agent exited with status $?"
poweroff -f
"#,
        modules = modules.join(" "),
        host = GUEST_HOST_NAME,
        mac = GUEST_ETH0_MAC,
        probe_ok = PROBE_OK,
        port = PORT_NAME,
        port_ready = PORT_READY,
        lib_path = dirs.join(":"),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// KVM if it boots `kernel` with `initrd` to the init's probe line, else
    /// TCG. `NOVA_AGENT_TEST_ACCEL=kvm|tcg` decides instead. A probe's result
    /// is kept in the cache for as long as this machine stays up.
    pub fn choose(qemu: &Path, kernel: &GuestKernel, initrd: &Path) -> Accel {
        match std::env::var("NOVA_AGENT_TEST_ACCEL").as_deref() {
            Ok("kvm") => return Accel::Kvm,
            Ok("tcg") => return Accel::Tcg,
            _ => {}
        }
        let usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if !usable {
            return Accel::Tcg;
        }
        let boot_id =
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let key = format!("{} {}", boot_id.trim(), kernel.release);
        let record = cache_dir().join("kvm-probe");
        if let Ok(text) = std::fs::read_to_string(&record) {
            if let Some(result) = text.strip_prefix(&format!("{key} ")) {
                return if result.trim() == "kvm" {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                };
            }
        }
        // A stock kernel reaches init within a second on working KVM; a
        // broken one spins forever.
        let works = Vm::boot(qemu, kernel, initrd, Accel::Kvm, "nova_probe")
            .and_then(|vm| vm.wait_for(PROBE_OK, Duration::from_secs(10)))
            .is_ok();
        let accel = if works { Accel::Kvm } else { Accel::Tcg };
        let word = if works { "kvm" } else { "tcg" };
        let _ = std::fs::write(&record, format!("{key} {word}\n"));
        accel
    }
}

/// A running QEMU; killed when dropped.
pub struct Vm {
    child: Child,
    output: Arc<Mutex<String>>,
    lines: Mutex<mpsc::Receiver<String>>,
    /// The host side of the guest agent port (libvirt's socket).
    pub qga_socket: PathBuf,
    pub accel: Accel,
    _dir: tempfile::TempDir,
}

impl Vm {
    /// Starts QEMU on `kernel` and `initrd`; `extra` is appended to the
    /// kernel command line. The serial console and QEMU's own messages are
    /// collected (see [`Vm::output`]).
    pub fn boot(
        qemu: &Path,
        kernel: &GuestKernel,
        initrd: &Path,
        accel: Accel,
        extra: &str,
    ) -> Result<Vm, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let qga_socket = dir.path().join("qga.sock");
        let initrd_mib = std::fs::metadata(initrd).map_err(|e| e.to_string())?.len() >> 20;
        // The archive and its unpacked copy both sit in guest memory at boot.
        let memory = 256 + 2 * initrd_mib;
        let mut command = Command::new(qemu);
        match accel {
            Accel::Kvm => command.args(["-accel", "kvm", "-cpu", "host"]),
            Accel::Tcg => command.args(["-accel", "tcg"]),
        };
        command
            .args(["-m", &memory.to_string(), "-smp", "1"])
            .args([
                "-nodefaults",
                "-nographic",
                "-no-reboot",
                "-serial",
                "stdio",
            ])
            .arg("-kernel")
            .arg(&kernel.vmlinuz)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", &format!("console=ttyS0 quiet panic=-1 {extra}")])
            .args(["-device", "virtio-serial-pci"])
            .arg("-chardev")
            .arg(format!(
                "socket,id=qga0,path={},server=on,wait=off",
                qga_socket.display()
            ))
            .args([
                "-device",
                &format!("virtserialport,chardev=qga0,name={PORT_NAME}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", qemu.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        collect(stdout, "", &output, tx.clone());
        collect(stderr, "qemu: ", &output, tx);
        Ok(Vm {
            child,
            output,
            lines: Mutex::new(rx),
            qga_socket,
            accel,
            _dir: dir,
        })
    }

    /// Waits until a console line contains `needle`. The error carries the
    /// whole output, and comes early if QEMU exits.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let lines = self.lines.lock().unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(()),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no console line with {needle:?} within {timeout:?}; output:\n{}",
                        self.output()
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "QEMU exited before printing {needle:?}; output:\n{}",
                        self.output()
                    ))
                }
            }
        }
    }

    /// The console and QEMU's messages so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `from` line by line into `output` (with `prefix`) and `tx`.
fn collect(
    from: impl Read + Send + 'static,
    prefix: &'static str,
    output: &Arc<Mutex<String>>,
    tx: mpsc::Sender<String>,
) {
    let sink = Arc::clone(output);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut raw = Vec::new();
        while reader.read_until(b'\n', &mut raw).is_ok_and(|n| n > 0) {
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            raw.clear();
            sink.lock().unwrap().push_str(&format!("{prefix}{line}\n"));
            let _ = tx.send(line);
        }
    });
}
