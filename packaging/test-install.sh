#!/usr/bin/env bash
# Installs the .debs of packaging/build-packages.sh into a scratch root and
# talks to the installed agent, without touching the machine itself:
#
#  1. a fresh root-owned directory target/test-install.XXXXXX (mode 0755;
#     in /tmp when the checkout is not root's) with an empty dpkg database
#     (but for the host's entries of the dependencies, libc6);
#  2. dpkg --root=<scratch> --force-script-chrootless -i nova-agent and
#     nova-agent-xenstore: the maintainer scripts run on the host with
#     DPKG_ROOT set (packaging/debian/nova-agent.postinst then leaves the
#     host's systemd alone);
#  3. a test config over <scratch>/etc/nova-agent/agent.toml (everything
#     inside the scratch root, apply = false, one unix-socket+json channel);
#     <scratch>/usr/sbin/nova-agent run in the background; `call version`
#     must answer returncode "0" and `plugins list` show every installed
#     plugin loaded, or installed to load at first use, and none in error;
#  4. when the example vendor plugin's .deb was built, installs it the same
#     way: its file in the plugin directory fires nova-agent's dpkg trigger,
#     whose postinst branch asks the running agent to reload, and
#     `call ssh-hostkeys` must answer "0" (when ssh-keygen made a host key);
#  5. SIGTERM: the agent must exit 0; then the packages are purged
#     (prerm/postrm, chrootless too) and the scratch root removed.
#
# Whatever fails, the trap stops the agent; the scratch root is then kept for
# inspection and its path printed. Nothing outside the scratch root may
# change: files under /etc, /lib/systemd and /usr/sbin newer than the start
# fail the run. Needs root (dpkg --root installs root-owned files, and the
# agent, as root, loads only root-owned plugins). Run from anywhere:
#
#   packaging/test-install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

target="$PWD/target"
packages="$target/packages"

if [ "$(id -u)" != 0 ]; then
    echo "test-install: run as root (dpkg --root, and the agent's trust check of root-owned plugins)" >&2
    exit 1
fi
shopt -s nullglob
agent_debs=("$packages"/nova-agent_*.deb "$packages"/nova-agent-xenstore_*.deb)
vendor_debs=("$packages"/nova-agent-plugin-ssh-hostkeys_*.deb)
shopt -u nullglob
if [ "${#agent_debs[@]}" != 2 ]; then
    echo "test-install: expected nova-agent_*.deb and nova-agent-xenstore_*.deb (one each) in $packages; run packaging/build-packages.sh" >&2
    exit 1
fi
# As root the agent loads a plugin only if every directory above it is owned
# by root and writable by root only (or root's and sticky, like /tmp). A
# checkout that is not (a CI user's clone) gets its scratch root in /tmp.
trusted() {
    local dir="$1"
    while [ "$dir" != / ]; do
        [ "$(stat -c %u "$dir")" = 0 ] || return 1
        if [ -n "$(find "$dir" -maxdepth 0 -perm /022)" ] && [ -z "$(find "$dir" -maxdepth 0 -perm -1000)" ]; then
            return 1
        fi
        dir="$(dirname "$dir")"
    done
}
base="$target"
if ! trusted "$target"; then
    echo "test-install: $target or a directory above it is not root's alone (the agent's plugin trust check); the scratch root goes to /tmp"
    base=/tmp
fi

marker="$(mktemp)"
scratch="$(mktemp -d "$base/test-install.XXXXXX")"
chmod 0755 "$scratch"
agent_pid=""
ok=""

cleanup() {
    if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
        kill -TERM "$agent_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$agent_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$agent_pid" 2>/dev/null || true
        wait "$agent_pid" 2>/dev/null || true
    fi
    rm -f "$marker"
    if [ -n "$ok" ]; then
        rm -rf "$scratch"
    else
        if [ -f "$scratch/agent.log" ]; then
            echo "--- the agent's log (last 40 lines):" >&2
            tail -n 40 "$scratch/agent.log" >&2
        fi
        echo "test-install: FAILED; the scratch root is kept: $scratch" >&2
    fi
}
trap cleanup EXIT

fail() {
    echo "test-install: $*" >&2
    exit 1
}

# dpkg into the scratch root; the maintainer scripts run on the host with
# DPKG_ROOT=<scratch>. --force-depends: the scratch database knows no libc6.
scratch_dpkg() {
    dpkg --root="$scratch" --force-script-chrootless --force-depends --log=/dev/null "$@"
}

echo "== scratch root $scratch"
mkdir -p "$scratch/var/lib/dpkg/info" "$scratch/var/lib/dpkg/updates"
touch "$scratch/var/lib/dpkg/status" "$scratch/var/lib/dpkg/available"
# The database starts empty but for the host's entries of what the packages
# depend on (libc6): --force-depends lets dpkg configure them regardless,
# but not process triggers, which it leaves pending (or abandons as looping)
# while nova-agent's dependencies are not installed. Nothing else of the host
# is used: the agent runs with the host's libc, as these entries say.
for deb in "${agent_debs[@]}" "${vendor_debs[@]}"; do
    dpkg-deb --field "$deb" Depends | tr ',' '\n' | sed 's/[|(].*//; s/[[:space:]]//g'
done | sort -u | while read -r dep; do
    case "$dep" in "" | nova-agent*) continue ;; esac
    if dpkg-query --show --showformat '${db:Status-Status}' "$dep" 2>/dev/null | grep -qx installed; then
        { dpkg-query --status "$dep"; echo; } >> "$scratch/var/lib/dpkg/status"
        # No files here: empty lists, so dpkg does not warn they are missing.
        name="$(dpkg-query --show --showformat '${binary:Package}' "$dep")"
        touch "$scratch/var/lib/dpkg/info/$name.list" "$scratch/var/lib/dpkg/info/$name.md5sums"
    fi
done

echo "== dpkg -i ${agent_debs[*]##*/}"
scratch_dpkg -i "${agent_debs[@]}"
scratch_dpkg --audit || fail "dpkg --audit: a package is not fully installed"

agent="$scratch/usr/sbin/nova-agent"
plugin_dir="$scratch/usr/lib/nova-agent/plugins"
config="$scratch/etc/nova-agent/agent.toml"
[ -x "$agent" ] || fail "$agent was not installed"
[ -f "$config" ] || fail "$config was not installed"
# The package enabled its unit inside the scratch root (deb-systemd-helper
# follows DPKG_ROOT), not on the host.
if [ -L "$scratch/etc/systemd/system/multi-user.target.wants/nova-agent.service" ]; then
    echo "unit enabled in the scratch root: etc/systemd/system/multi-user.target.wants/nova-agent.service"
fi

echo "== test config $config"
sandbox="$scratch/sandbox"
mkdir -p "$sandbox/etc/ssh"
have_key=""
if command -v ssh-keygen >/dev/null; then
    ssh-keygen -q -t ed25519 -N "" -C "test-install" -f "$sandbox/etc/ssh/ssh_host_ed25519_key"
    have_key=1
fi
socket="$scratch/run/nova-agent/agent.sock"
qga_socket="$scratch/run/nova-agent/qga.sock"
cat > "$config" <<EOF
# packaging/test-install.sh: everything inside the scratch root.
plugin_dir = "$plugin_dir"
root = "$sandbox"
apply = false
state_dir = "$scratch/var/lib/nova-agent"
run_dir = "$scratch/run/nova-agent"

[[channel]]
exchange = "unix-socket"
parser = "json"

[[channel]]
exchange = "virtio-serial"
parser = "qga"

[plugins.unix-socket]
path = "$socket"

[plugins.virtio-serial]
path = "$qga_socket"
method = "unix-listen"

[log]
level = "info"
EOF
"$agent" config check --config "$config"

echo "== $agent run"
# Not a systemd service here, whatever the caller is.
env -u NOTIFY_SOCKET -u WATCHDOG_USEC -u WATCHDOG_PID -u JOURNAL_STREAM -u LISTEN_FDS -u LISTEN_PID \
    "$agent" run --config "$config" > "$scratch/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do
    [ -S "$socket" ] && break
    kill -0 "$agent_pid" 2>/dev/null || fail "the agent exited before its socket appeared"
    sleep 0.1
done
[ -S "$socket" ] || fail "no socket at $socket after 10 s"

echo "== call version"
out="$("$agent" call version --config "$config")" || fail "call version failed: $out"
echo "$out"
grep -q '"returncode": *"0"' <<<"$out" || fail "call version: returncode is not \"0\""

echo "== QGA guest-sync (the KVM host's protocol, on a unix socket)"
if command -v python3 >/dev/null; then
    out="$(python3 - "$qga_socket" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b'{"execute":"guest-sync","arguments":{"id":4711}}')
reply = b""
while not reply.endswith(b"\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
print(reply.decode(), end="")
PY
)" || fail "QGA guest-sync failed: $out"
    echo "$out"
    [ "$out" = '{"return": 4711}' ] || fail "QGA guest-sync: unexpected answer"
else
    echo "skipped: no python3 to play the QGA host"
fi

# Every plugin file the packages installed is listed by the live agent as
# loaded, or installed (its manifest read, loaded at its first use); the
# listing exits 1 if any is in error.
check_loaded() {
    local list so
    list="$("$agent" plugins list --config "$config")" || fail "plugins list failed: $list"
    echo "$list"
    for so in "$plugin_dir"/*.so; do
        grep -qF "[loaded] $so" <<<"$list" || grep -qF "[installed] $so" <<<"$list" \
            || fail "plugins list: $so is neither loaded nor installed"
    done
}
echo "== plugins list"
check_loaded

if [ "${#vendor_debs[@]}" -gt 0 ]; then
    echo "== dpkg -i ${vendor_debs[*]##*/} (nova-agent's trigger reloads the agent)"
    out="$(scratch_dpkg -i "${vendor_debs[@]}" 2>&1)" || fail "dpkg -i vendor plugin: $out"
    echo "$out"
    # The postinst's triggered branch prints what the running agent reloaded
    # (the agent may have loaded the file through inotify already).
    grep -q "Processing triggers for nova-agent" <<<"$out" || fail "nova-agent's dpkg trigger did not fire"
    grep -q "reloaded in" <<<"$out" || fail "the trigger did not reach the running agent"
    if grep -q "a plugin did not load" <<<"$out"; then fail "the reload failed"; fi
    ls "$plugin_dir"/libnova_agent_plugin_ssh_hostkeys.so >/dev/null
    echo "== plugins list"
    check_loaded
    echo "== call ssh-hostkeys"
    if out="$("$agent" call ssh-hostkeys --config "$config")"; then
        echo "$out"
    else
        echo "$out"
        [ -z "$have_key" ] || fail "call ssh-hostkeys failed although $sandbox/etc/ssh has a host key"
    fi
    if [ -n "$have_key" ]; then
        grep -q '"returncode": *"0"' <<<"$out" || fail "call ssh-hostkeys: returncode is not \"0\""
    fi
fi

echo "== SIGTERM"
kill -TERM "$agent_pid"
status=0
wait "$agent_pid" || status=$?
agent_pid=""
[ "$status" = 0 ] || fail "the agent exited $status on SIGTERM"
[ ! -e "$socket" ] || fail "the agent left its socket $socket behind"
echo "the agent exited 0"

echo "== dpkg --purge (prerm and postrm, chrootless)"
ours=()
for deb in "${vendor_debs[@]}" "${agent_debs[@]}"; do
    ours+=("$(dpkg-deb --field "$deb" Package)")
done
scratch_dpkg --purge "${ours[@]}"
leftover="$(find "$scratch/usr" "$scratch/etc" ! -type d 2>/dev/null || true)"
[ -z "$leftover" ] || fail "left after the purge: $leftover"

echo "== the host"
changed="$(find /etc /lib/systemd /usr/sbin -newer "$marker" 2>/dev/null || true)"
[ -z "$changed" ] || fail "changed outside the scratch root: $changed"
echo "nothing under /etc, /lib/systemd or /usr/sbin changed"

ok=1
echo "test-install: OK"
