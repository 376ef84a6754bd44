#!/usr/bin/env bash
# Runs the Swift package's XCTest suite under Swift 6 (Debian trixie's `swiftlang`) inside a
# debootstrap chroot at .cache/swift-root (created on first use: ~3 min, ~3 GB; needs root).
# Expects tools/test_bindings.sh to have built target/debug/libsmolvlm_ffi.so and generated the
# Swift bindings into .cache/bindings/swift. Prints XCTest's summary and `Swift: N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHROOT=${SWIFT_CHROOT:-$ROOT/.cache/swift-root}
GEN=$ROOT/.cache/bindings/swift

# (usr/bin/swift is a link into the chroot, so test the link, not its target.)
if [ ! -L "$CHROOT/usr/bin/swift" ]; then
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
    echo "creating the Swift 6 chroot in $CHROOT (debootstrap trixie)"
    [ -e "$CHROOT/etc/debian_version" ] || debootstrap --variant=minbase trixie "$CHROOT" http://deb.debian.org/debian >/dev/null
    mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
    chroot "$CHROOT" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends swiftlang libc6-dev' >/dev/null
    umount "$CHROOT/proc"
fi

# The package's generated parts: the C header module and the uniffi Swift file.
C=ios/Sources/SmolVLMFFIC
rm -rf "$C" ios/Sources/SmolVLMFFI && mkdir -p "$C/include" ios/Sources/SmolVLMFFI
cp "$GEN/SmolVLMFFIC.h" "$C/include/"
cp "$GEN/SmolVLMFFIC.modulemap" "$C/include/module.modulemap"
echo "/* SwiftPM needs a source file in a C target; the declarations are in include/. */" > "$C/shim.c"
cp "$GEN/SmolVLMFFI.swift" ios/Sources/SmolVLMFFI/
python3 tools/readme_example.py swift > ios/Tests/SmolVLMTests/ReadmeExample.swift

MNT=$CHROOT/mnt/smolvlm
mkdir -p "$MNT"
cleanup() {
    mountpoint -q "$MNT" && umount "$MNT"
    mountpoint -q "$CHROOT/proc" && umount "$CHROOT/proc"
    return 0
}
trap cleanup EXIT
mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
mountpoint -q "$MNT" || mount --bind "$ROOT" "$MNT"
LOG=$ROOT/.cache/swift-test.log
set +e
chroot "$CHROOT" env HOME=/root SMOLVLM_LIB_DIR=/mnt/smolvlm/target/debug LD_LIBRARY_PATH=/mnt/smolvlm/target/debug \
    SMOLVLM_FIXTURES=/mnt/smolvlm/tests/fixtures \
    bash -c 'cd /mnt/smolvlm/ios && swift build --build-tests -q 2>&1 && swift test --skip-build 2>&1' > "$LOG"
rc=$?
set -e
grep -E "error:|failed" "$LOG" | grep -vE "^Test Suite '.*' (passed|started)" | tail -40
summary=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$LOG" | tail -1)
echo "${summary#"${summary%%[![:space:]]*}"}"
if [ -n "$summary" ]; then
    total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
    failed=$(echo "$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
    echo "Swift: $((total - failed)) passed, $failed failed"
else
    echo "Swift: 0 passed, 1 failed (the package did not build; see $LOG)"
    tail -30 "$LOG"
    rc=1
fi
exit $rc
