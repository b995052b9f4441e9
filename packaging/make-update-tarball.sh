#!/usr/bin/env bash
# Builds the release agent and its plugins and packs them as an agentupdate
# package (the format is documented in plugins/update/src/lib.rs):
#
#   nova-agent-<version>/bin/nova-agent          mode 0755
#   nova-agent-<version>/plugins/lib*.so         mode 0644 (the real plugins only)
#   nova-agent-<version>/VERSION
#
# into target/nova-agent-<version>.tar.gz, owned by 0:0, names sorted, and
# prints its path, MD5 (what Nova's agent_builds table holds, and sends) and
# SHA-256 (for [plugins.update] sha256). Set SOURCE_DATE_EPOCH for a
# reproducible tarball.
#
# Usage: packaging/make-update-tarball.sh [extra cargo build arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release "$@"

target="${CARGO_TARGET_DIR:-target}"
release="$target/release"
binary="$release/nova-agent"
version="$("$binary" --version | awk '{print $2}')"
case "$version" in
    "" | */* | *[[:space:]]*) echo "cannot read a version from $binary --version" >&2; exit 1 ;;
esac

# The real plugins are the cdylib crates in plugins/; a stale .so of a crate
# that is gone is left out, and nova_agent_test_plugin_* never matches.
plugins=()
for manifest in plugins/*/Cargo.toml; do
    grep -q 'crate-type *= *\["cdylib"\]' "$manifest" || continue
    crate="$(awk -F'"' '/^name *=/ {print $2; exit}' "$manifest")"
    case "$crate" in
        nova-agent-plugin-*) ;;
        *) continue ;;
    esac
    file="$release/lib${crate//-/_}.so"
    if [ ! -f "$file" ]; then
        echo "missing $file (crate $crate): did the build fail?" >&2
        exit 1
    fi
    plugins+=("$file")
done

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
top="$staging/nova-agent-$version"
install -d -m 0755 "$top" "$top/bin" "$top/plugins"
install -m 0755 "$binary" "$top/bin/nova-agent"
for file in "${plugins[@]}"; do
    install -m 0644 "$file" "$top/plugins/"
done
echo "$version" > "$top/VERSION"
chmod 0644 "$top/VERSION"

output="$target/nova-agent-$version.tar.gz"
tar --create --directory "$staging" --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="@${SOURCE_DATE_EPOCH:-0}" --format=gnu "nova-agent-$version" \
    | gzip -9 -n > "$output.tmp"
mv "$output.tmp" "$output"

echo "$output"
md5sum "$output" | awk '{print "md5sum  " $1}'
sha256sum "$output" | awk '{print "sha256  " $1}'
