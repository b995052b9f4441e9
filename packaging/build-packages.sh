#!/usr/bin/env bash
# Builds nova-agent's packages into target/packages/:
#
#   nova-agent_<v>-1_<arch>.deb            the agent, its plugins but xenstore,
#   nova-agent-<v>-1.<arch>.rpm            the config, the systemd unit, man pages,
#                                          shell completions
#   nova-agent-xenstore_<v>-1_<arch>.deb   the GPL-3.0-only xenstore plugin
#   nova-agent-xenstore-<v>-1.<arch>.rpm
#   nova-agent-plugin-ssh-hostkeys_*.deb   the example vendor plugin, when
#                                          examples/vendor-plugin/ exists
#                                          (built in target/vendor-plugin/)
#
# Steps: the release build of the workspace's default members; the man pages
# and completions (tools/gen-docs, into target/gen-docs); the debs with
# cargo-deb --no-build (cargo-deb strips its own copies of the binaries); the
# rpms with cargo-generate-rpm, which does not strip, from a staging directory
# of stripped copies and gzipped man pages. The package metadata is in
# agent/Cargo.toml and plugins/xenstore/Cargo.toml; docs/packaging.md has
# the rest.
#
# Needs: cargo-deb, cargo-generate-rpm (cargo install --locked), strip, gzip.
# Usage: packaging/build-packages.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything in the shared target directory of the checkout: cargo-deb and
# cargo-generate-rpm resolve target/release/ against it.
export CARGO_TARGET_DIR="$PWD/target"
target="$CARGO_TARGET_DIR"
out="$target/packages"

for tool in cargo-deb cargo-generate-rpm strip gzip; do
    if ! command -v "$tool" >/dev/null; then
        echo "build-packages: $tool is missing (cargo install --locked cargo-deb cargo-generate-rpm; binutils, gzip)" >&2
        exit 1
    fi
done

echo "== release build"
cargo build --release

echo "== man pages and completions"
rm -rf "$target/gen-docs"
cargo run --release -p nova-agent-gen-docs -- "$target/gen-docs"

rm -rf "$out"
mkdir -p "$out"

echo "== debs"
# cargo-deb warns, for each asset outside target/release/, that it "will not
# be built": the ../target/gen-docs/ ones are not meant to be (made above).
# Those warnings are left out, every other line is kept.
gen_docs_warning="^warning: Only source paths starting with exactly 'target/release/' are detected as Cargo target dir\. '\.\./target/gen-docs/"
deb() {
    local log status=0
    log="$(cargo deb "$@" 2>&1)" || status=$?
    grep -v "$gen_docs_warning" <<<"$log" || true
    return "$status"
}
deb -p nova-agent --no-build --output "$out/"
deb -p nova-agent-plugin-xenstore --no-build --output "$out/"

# The versions written by hand must follow the workspace's: nova-agent-xenstore
# depends on exactly this nova-agent, and the changelog's top entry is this
# version (lintian checks it).
deb_version="$(dpkg-deb --field "$out"/nova-agent_*.deb Version)"
changelog_version="$(sed -n '1s/^nova-agent (\([^)]*\)).*/\1/p' packaging/debian/changelog)"
if [ "$changelog_version" != "$deb_version" ]; then
    echo "build-packages: packaging/debian/changelog is at $changelog_version, the package at $deb_version: add an entry" >&2
    exit 1
fi
xenstore_depends="$(dpkg-deb --field "$out"/nova-agent-xenstore_*.deb Depends)"
if ! grep -qF "nova-agent (= $deb_version)" <<<"$xenstore_depends" \
    || ! grep -qF "nova-agent = \"= $deb_version\"" plugins/xenstore/Cargo.toml; then
    echo "build-packages: plugins/xenstore/Cargo.toml must depend on nova-agent (= $deb_version) (deb and rpm)" >&2
    exit 1
fi

echo "== rpms"
# cargo-generate-rpm takes files as they are and resolves target/release/
# against --target-dir: give it stripped copies (as cargo-deb strips: symbols
# not needed for relocation, no .comment/.note) and the man pages gzipped.
staging="$target/rpm-staging"
rm -rf "$staging"
mkdir -p "$staging/release/man8"
for file in "$target/release/nova-agent" "$target"/release/libnova_agent_plugin_*.so; do
    strip --strip-unneeded --remove-section=.comment --remove-section=.note \
        -o "$staging/release/$(basename "$file")" "$file"
done
for page in "$target"/gen-docs/man/*.8; do
    # shellcheck disable=SC2094 # reads the page, writes its .gz elsewhere
    gzip -9n < "$page" > "$staging/release/man8/$(basename "$page").gz"
done
cargo generate-rpm -p agent --target-dir "$staging" --output "$out/"
cargo generate-rpm -p plugins/xenstore --target-dir "$staging" --output "$out/"
# A scriptlet path cargo-generate-rpm does not find becomes the scriptlet's
# text, silently: check what went in, when rpm is there to read it.
if command -v rpm >/dev/null; then
    scripts="$(rpm -qp --scripts "$out"/nova-agent-[0-9]*.rpm)"
    grep -q "systemctl try-restart nova-agent.service" <<<"$scripts" \
        || { echo "build-packages: the nova-agent rpm lacks its scriptlets" >&2; exit 1; }
    scripts="$(rpm -qp --scripts "$out"/nova-agent-xenstore-[0-9]*.rpm)"
    grep -q "nova-agent plugins reload --if-running" <<<"$scripts" \
        || { echo "build-packages: the nova-agent-xenstore rpm lacks its scriptlets" >&2; exit 1; }
fi

if [ -f examples/vendor-plugin/Cargo.toml ]; then
    echo "== vendor plugin (examples/vendor-plugin)"
    # In a target dir of its own: target/release/ is the demo's plugin
    # directory, and a vendor's plugin does not belong in it. cargo-deb
    # resolves the plugin's target/release/ asset against CARGO_TARGET_DIR.
    CARGO_TARGET_DIR="$target/vendor-plugin" \
        cargo build --release --manifest-path examples/vendor-plugin/Cargo.toml
    CARGO_TARGET_DIR="$target/vendor-plugin" \
        deb --manifest-path examples/vendor-plugin/Cargo.toml --no-build --output "$out/"
fi

echo "== built"
ls -l "$out"
