#!/usr/bin/env bash
# Runs the Swift package's XCTest suite (the root Package.swift) under Swift 6 (Debian trixie's
# `swiftlang`) inside a debootstrap chroot at .cache/swift-root (SWIFT_CHROOT overrides; created
# on first use: ~1-3 min, ~3.2 GB; needs root; its python3 runs the download tests' local hub).
# Expects tools/test_bindings.sh to have built target/debug/libsmolvlm_ffi.so and checked that the
# committed Swift bindings match it. Prints XCTest's summary and `Swift: N passed, N failed`.
#
# The chroot counts as ready only once the marker file .smolvlm-swift-ready in it exists (written
# last); a half-made one is completed (apt) or, if debootstrap did not finish, made anew.
# debootstrap/apt output goes to .cache/swift-chroot.log, whose tail is printed on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHROOT=${SWIFT_CHROOT:-$ROOT/.cache/swift-root}
CHROOT=${CHROOT%/}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PKGS="swiftlang libc6-dev python3"
READY=$CHROOT/.smolvlm-swift-ready
SETUP_LOG=$ROOT/.cache/swift-chroot.log
LOG=$ROOT/.cache/swift-test.log
MNT=$CHROOT/mnt/smolvlm
mkdir -p "$ROOT/.cache" "$(dirname "$CHROOT")"

[ "$(id -u)" = 0 ] || { echo "Swift: 0 passed, 1 failed (the chroot needs root)"; exit 1; }

# One run at a time per chroot: runs share its mounts and .build.
exec 9>"$CHROOT.lock"
flock 9

# ---- mounts: every one made here is undone on exit, also on failure or interrupt ---------------
MOUNTS=()
mounts_under_chroot() {  # deepest first
    awk -v c="$CHROOT/" 'index($2, c) == 1 { print $2 }' /proc/self/mounts | sort -r
}
unmount_all() {
    local m i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        m=${MOUNTS[i]}
        mountpoint -q "$m" || continue
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "warning: could not unmount $m" >&2
    done
    MOUNTS=()
    # Left over by a run that was killed (we hold the lock, so nobody else is using them).
    for m in $(mounts_under_chroot); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "warning: could not unmount $m" >&2
    done
}
trap unmount_all EXIT
trap 'exit 130' INT TERM HUP
do_mount() {  # do_mount TARGET MOUNT-ARGS...
    local t=$1; shift
    mkdir -p "$t"
    mountpoint -q "$t" || mount "$@" "$t"
    MOUNTS+=("$t")
}
mount_system() {
    do_mount "$CHROOT/proc" -t proc proc             # swiftc fails without /proc
    do_mount "$CHROOT/sys" -t sysfs -o ro sysfs
    do_mount "$CHROOT/dev/pts" --bind /dev/pts       # apt's dpkg log needs a pty
}
in_chroot() {
    chroot "$CHROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
unmount_all  # stale mounts of a killed run

# ---- the chroot --------------------------------------------------------------------------------
logged() { echo "+ $*" >>"$SETUP_LOG"; "$@" >>"$SETUP_LOG" 2>&1; }
retry() {  # retry CMD...: three tries, for network hiccups
    local n
    for n in 1 2 3; do
        logged "$@" && return 0
        echo "(try $n of 3 failed)" >>"$SETUP_LOG"
        [ $n = 3 ] || sleep $((n * 10))
    done
    return 1
}
fail() {
    echo "Swift chroot setup failed: $1. Last lines of $SETUP_LOG:"
    tail -40 "$SETUP_LOG" | sed 's/^/    /'
    echo "Swift: 0 passed, 1 failed (no Swift toolchain)"
    exit 1
}
base_done() {  # debootstrap removes $CHROOT/debootstrap when it finishes
    [ -x "$CHROOT/usr/bin/apt-get" ] && [ -e "$CHROOT/etc/debian_version" ] && [ ! -e "$CHROOT/debootstrap" ]
}
remove_chroot() {
    unmount_all
    # Never recurse into a mount (a bind mount of the repository would be deleted with it).
    [ -z "$(mounts_under_chroot)" ] || fail "cannot remove $CHROOT: still mounted: $(mounts_under_chroot | tr '\n' ' ')"
    rm -rf --one-file-system "$CHROOT"
}

if [ ! -e "$READY" ]; then
    t0=$(date +%s)
    : >"$SETUP_LOG"
    echo "creating the Swift 6 chroot in $CHROOT (debootstrap trixie + apt: $PKGS; log: $SETUP_LOG)"
    if ! command -v debootstrap >/dev/null; then
        retry apt-get update -q || fail "apt-get update (host)"
        retry env DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap || fail "installing debootstrap (host)"
    fi
    if [ -e "$CHROOT" ] && ! base_done; then
        echo "  $CHROOT is a half-made debootstrap: making it anew"
        remove_chroot
    fi
    if ! base_done; then
        for n in 1 2 3; do
            logged debootstrap --variant=minbase trixie "$CHROOT" "$MIRROR" && base_done && break
            echo "(debootstrap try $n of 3 failed)" >>"$SETUP_LOG"
            remove_chroot
            [ $n = 3 ] && fail "debootstrap trixie"
            sleep $((n * 10))
        done
        echo "  debootstrap: $(($(date +%s) - t0)) s"
    fi
    cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true
    printf '#!/bin/sh\nexit 101\n' >"$CHROOT/usr/sbin/policy-rc.d" && chmod +x "$CHROOT/usr/sbin/policy-rc.d"
    mount_system
    APT="-o Acquire::Retries=3 -o Dpkg::Use-Pty=0"
    logged in_chroot dpkg --configure -a || fail "dpkg --configure -a (finishing an interrupted install)"
    retry in_chroot apt-get $APT update -q || fail "apt-get update"
    retry in_chroot apt-get $APT install -y -q --no-install-recommends $PKGS || {
        logged in_chroot apt-get $APT install -y -q -f
        fail "apt-get install $PKGS"
    }
    logged in_chroot swiftc --version || fail "swiftc --version (the installed toolchain does not run)"
    logged in_chroot apt-get clean || true
    unmount_all
    touch "$READY"
    echo "  Swift chroot ready in $(($(date +%s) - t0)) s"
fi
# A chroot made before the download tests lacks python3 (tests/hub/server.py): add it.
if [ ! -x "$CHROOT/usr/bin/python3" ]; then
    echo "installing python3 into the Swift chroot (log: $SETUP_LOG)"
    cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true
    mount_system
    APT="-o Acquire::Retries=3 -o Dpkg::Use-Pty=0"
    retry in_chroot apt-get $APT update -q || fail "apt-get update"
    retry in_chroot apt-get $APT install -y -q --no-install-recommends python3 || fail "apt-get install python3"
    logged in_chroot apt-get clean || true
    unmount_all
fi

# ---- the README's Swift examples, compiled as tests ------------------------------------------------
python3 tools/readme_example.py swift > ios/Tests/SmolVLMTests/ReadmeExample.swift
python3 tools/readme_example.py readme-swift-download > ios/Tests/SmolVLMTests/ReadmeDownload.swift
python3 tools/readme_example.py readme-swift-live > ios/Tests/SmolVLMTests/ReadmeLive.swift
python3 tools/readme_example.py readme-swift-video > ios/Tests/SmolVLMTests/ReadmeVideo.swift

# ---- build and test ----------------------------------------------------------------------------
mount_system
do_mount "$MNT" --bind "$ROOT"
# The root manifest links the host library by name on Linux; its folder goes to the linker here.
FLAGS="-Xlinker -L/mnt/smolvlm/target/debug"
swift_in() {  # swift_in FOLDER COMMAND: runs COMMAND in the repository's FOLDER, in the chroot
    in_chroot LD_LIBRARY_PATH=/mnt/smolvlm/target/debug \
        SMOLVLM_FIXTURES=/mnt/smolvlm/tests/fixtures bash -c "cd /mnt/smolvlm/$1 && $2"
}
# run_package LABEL FOLDER LOG: builds and tests one package; prints the times, failures, XCTest's
# summary and `LABEL: N passed, N failed`; returns non-zero on a failure.
run_package() {
    local label=$1 dir=$2 log=$3 rc=0 t0 t1 t2 summary total failed
    t0=$(date +%s)
    swift_in "$dir" "swift build --build-tests -q $FLAGS" >"$log" 2>&1 || rc=$?
    t1=$(date +%s)
    [ $rc -ne 0 ] || swift_in "$dir" "swift test --skip-build $FLAGS" >>"$log" 2>&1 || rc=$?
    t2=$(date +%s)
    echo "$label: swift build $((t1 - t0)) s, swift test $((t2 - t1)) s (log: $log)"
    # (grep finds nothing when all is well: keep that from ending the script under pipefail.)
    grep -E "error:|failed" "$log" | grep -vE "^Test Suite '.*' (passed|started)" | tail -40 || true
    summary=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -1 || true)
    if [ -z "$summary" ]; then
        tail -30 "$log"
        echo "$label: 0 passed, 1 failed (the package did not build or the tests did not run; see $log)"
        return 1
    fi
    echo "${summary#"${summary%%[![:space:]]*}"}"
    total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
    failed=$(echo "$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
    echo "$label: $((total - failed)) passed, $failed failed"
    [ "$failed" = 0 ] && [ $rc = 0 ]
}
rc=0
run_package Swift . "$LOG" || rc=1
# The Apple-only helpers against stand-ins, and what `import SmolVLM` shows.
swift_in . 'bash tools/swift_surface.sh' || rc=1
# The sample app's state logic (ios/SampleApp: SampleState and its tests, on the real library);
# its SwiftUI/AVFoundation layer (App/) only parses here.
run_package "Swift sample" ios/SampleApp "$ROOT/.cache/swift-sample-test.log" || rc=1
if swift_in ios/SampleApp 'for f in App/*.swift; do swiftc -parse -swift-version 6 "$f" || exit 1; done' >"$ROOT/.cache/swift-sample-parse.log" 2>&1; then
    echo "Swift sample: the $(ls ios/SampleApp/App/*.swift | wc -l) files of its iOS layer (App/) parse (they cannot compile here)"
else
    echo "Swift sample: App/ does not parse:"
    cat "$ROOT/.cache/swift-sample-parse.log"
    rc=1
fi
unmount_all
exit $rc
