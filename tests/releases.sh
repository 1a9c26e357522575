#!/usr/bin/env bash
# Builds the library of every released version (sql/released/RELEASES) from
# its commit, once: the result is kept under /var/tmp/cdp_identity/releases/
# by commit. Prints "VERSION LIBRARY_FILE INSTALLED_NAME" per release, where
# INSTALLED_NAME is the file name that release's catalog entries point at
# (cdp_identity.so before 0.2.0, cdp_identity-VERSION.so since).
#   tests/releases.sh                         debug builds (the upgrade tests)
#   CDP_RELEASES_PROFILE=release tests/releases.sh   release builds (the benchmark)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
STORE=${CDP_RELEASES_DIR:-/var/tmp/cdp_identity/releases}
PROFILE=${CDP_RELEASES_PROFILE:-debug}
case $PROFILE in debug) flags=() ;; release) flags=(--release) ;; *) echo "CDP_RELEASES_PROFILE: debug or release" >&2; exit 2 ;; esac
mkdir -p "$STORE"
grep -v '^#' sql/released/RELEASES | while read -r version commit; do
    [ -n "$version" ] || continue
    lib="$STORE/$commit/libcdp_identity.so"
    [ "$PROFILE" = debug ] || lib="$STORE/$commit/$PROFILE/libcdp_identity.so"
    if [ ! -s "$lib" ]; then
        src="$STORE/$commit/src"
        rm -rf "$src"; mkdir -p "$src"
        git archive "$commit" | tar -x -C "$src"
        echo "releases: building $version from $commit ($PROFILE)" >&2
        # One target directory for every release: the dependencies build once.
        (cd "$src" && CARGO_TARGET_DIR="$STORE/target" cargo build --lib --features pg15 "${flags[@]}" --quiet >&2)
        mkdir -p "$(dirname "$lib")"
        cp "$STORE/target/$PROFILE/libcdp_identity.so" "$lib"
        rm -rf "$src"
    fi
    if git show "$commit:cdp_identity.control" | grep -q '^module_pathname'; then
        name=cdp_identity.so
    else
        name="cdp_identity-$version.so"
    fi
    echo "$version $lib $name"
done
