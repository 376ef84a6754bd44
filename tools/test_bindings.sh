#!/usr/bin/env bash
# Builds the FFI library, generates the Kotlin and Swift bindings with the pinned uniffi-bindgen,
# and runs the Kotlin suite (JVM + JNA + JUnit 4) and the Swift suite (XCTest, Swift 6 in a Debian
# trixie chroot). Installs what it needs, idempotently, into .cache/ (ignored) and via apt.
# Each suite prints `N passed, N failed`. SKIP_SWIFT=1 skips the Swift suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/.cache
mkdir -p "$CACHE"

if [ "${SKIP_SWIFT:-0}" != 1 ] && [ "$(id -u)" != 0 ] && [ ! -L "$CACHE/swift-root/usr/bin/swift" ]; then
    echo "Swift: skipped (creating the Swift chroot needs root; run as root or set SKIP_SWIFT=1)"
    SKIP_SWIFT=1
fi
need_apt=()
for p in libjna-java junit4 default-jdk-headless; do
    dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
command -v npm >/dev/null || need_apt+=(npm)
if [ "${SKIP_SWIFT:-0}" != 1 ]; then command -v debootstrap >/dev/null || need_apt+=(debootstrap); fi
if [ ${#need_apt[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "test_bindings.sh needs: apt-get install ${need_apt[*]}"; exit 1; }
    echo "installing ${need_apt[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}") >/dev/null
fi

# Kotlin compiler from npm (it also carries kotlin-test and kotlinx-coroutines).
K=$CACHE/kotlinc/package
if [ ! -x "$K/bin/kotlinc" ]; then
    echo "fetching kotlin-compiler@2.4.20 from npm"
    (cd "$CACHE" && npm pack --silent kotlin-compiler@2.4.20 >/dev/null && mkdir -p kotlinc && tar xzf kotlin-compiler-2.4.20.tgz -C kotlinc && rm kotlin-compiler-2.4.20.tgz)
fi

echo "building libsmolvlm_ffi and uniffi-bindgen"
cargo build --locked -q -p smolvlm-ffi -p uniffi-bindgen
LIB=$ROOT/target/debug/libsmolvlm_ffi.so
GEN=$CACHE/bindings
rm -rf "$GEN" && mkdir -p "$GEN"
target/debug/uniffi-bindgen generate --library "$LIB" --language kotlin --out-dir "$GEN/kotlin" --no-format >/dev/null
target/debug/uniffi-bindgen generate --library "$LIB" --language swift --out-dir "$GEN/swift" --no-format >/dev/null

# ---- Kotlin -------------------------------------------------------------------------------
KT=$CACHE/kt
mkdir -p "$KT/gen"
DEPS=/usr/share/java/jna.jar:$K/lib/kotlinx-coroutines-core-jvm.jar
TESTDEPS=$DEPS:/usr/share/java/junit4.jar:/usr/share/java/hamcrest.jar:$K/lib/kotlin-test.jar:$K/lib/kotlin-test-junit.jar:$K/lib/kotlin-stdlib.jar
# The generated bindings change only with the Rust API: compile them once per change (~40 s).
SUM=$(sha256sum "$GEN/kotlin/dev/smolvlm/ffi/smolvlm_ffi.kt" | cut -d' ' -f1)
if [ "$(cat "$KT/ffi.sum" 2>/dev/null)" != "$SUM" ]; then
    echo "compiling the generated Kotlin bindings"
    "$K/bin/kotlinc" -nowarn "$GEN/kotlin" -cp "$DEPS" -d "$KT/ffi.jar"
    echo "$SUM" > "$KT/ffi.sum"
fi
python3 tools/readme_example.py kotlin "package dev.smolvlm.readme" > "$KT/gen/ReadmeExample.kt"
echo "compiling the Kotlin SDK, the README example and the tests"
"$K/bin/kotlinc" -nowarn android/sdk/src/main/kotlin android/sdk/src/test/kotlin "$KT/gen/ReadmeExample.kt" \
    -cp "$KT/ffi.jar:$TESTDEPS" -d "$KT/tests.jar"
kotlin_rc=0
java -Djna.library.path="$(dirname "$LIB")" -Dsmolvlm.fixtures="$ROOT/tests/fixtures" \
    -cp "$KT/tests.jar:$KT/ffi.jar:$TESTDEPS" dev.smolvlm.RunTestsKt || kotlin_rc=$?

# ---- Swift --------------------------------------------------------------------------------
swift_rc=0
if [ "${SKIP_SWIFT:-0}" != 1 ]; then
    bash tools/test_swift.sh || swift_rc=$?
fi
[ $kotlin_rc -eq 0 ] && [ $swift_rc -eq 0 ]
