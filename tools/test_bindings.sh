#!/usr/bin/env bash
# Builds the FFI library, generates the Kotlin and Swift bindings with the pinned uniffi-bindgen,
# runs the Kotlin suite (JVM + JNA + JUnit 4; its download tests start the local hub,
# tests/hub/server.py, with python3) and the sample app's state tests, type-checks the
# Android-only Kotlin (the SDK's converters, the sample app) against android.jar, and runs the
# Swift suite (XCTest, Swift 6 in a Debian trixie chroot). Installs what it needs, idempotently,
# into .cache/ (ignored) and via apt.
# Each suite prints `N passed, N failed` (the sample's tests as `Kotlin sample: N passed, N
# failed`). SKIP_SWIFT=1 skips the Swift suite.
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
for p in libjna-java junit4 default-jdk-headless aapt; do
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
python3 tools/readme_example.py readme-kotlin-download "package dev.smolvlm.readme" > "$KT/gen/ReadmeDownload.kt"
python3 tools/readme_example.py readme-kotlin-live "package dev.smolvlm.readme" > "$KT/gen/ReadmeLive.kt"
python3 tools/readme_example.py readme-kotlin-video "package dev.smolvlm.readme" > "$KT/gen/ReadmeVideo.kt"
echo "compiling the Kotlin SDK, the README examples and the tests"
"$K/bin/kotlinc" -nowarn android/sdk/src/main/kotlin android/sdk/src/test/kotlin tests/kotlin "$KT/gen/ReadmeExample.kt" "$KT/gen/ReadmeDownload.kt" "$KT/gen/ReadmeLive.kt" "$KT/gen/ReadmeVideo.kt" \
    -cp "$KT/ffi.jar:$TESTDEPS" -d "$KT/tests.jar"
kotlin_rc=0
# A small, fixed, pre-touched Java heap: the live camera soak test measures the process RSS. A
# heap that grows (or is first touched) as garbage accumulates would hide what the native side
# does, and so would a rare GC: JNA frees the native memory of each call's structures only when
# the garbage collector collects them.
java -Xms96m -Xmx96m -XX:+AlwaysPreTouch -Djna.library.path="$(dirname "$LIB")" -Dsmolvlm.fixtures="$ROOT/tests/fixtures" \
    -cp "$KT/tests.jar:$KT/ffi.jar:$TESTDEPS" dev.smolvlm.testing.JUnitSuiteKt Kotlin \
    dev.smolvlm.SmolVLMTest dev.smolvlm.DownloadTest dev.smolvlm.LiveCameraTest dev.smolvlm.VideoTest || kotlin_rc=$?

# The sample app's state classes are plain Kotlin (no Android classes): their tests run on the JVM
# against the real library, the fixture model and the local hub.
echo "compiling the sample app's state classes and their tests"
sample_rc=0
"$K/bin/kotlinc" -nowarn android/sample/src/main/kotlin/dev/smolvlm/sample/state android/sample/src/test/kotlin \
    -cp "$KT/tests.jar:$KT/ffi.jar:$TESTDEPS" -d "$KT/sample-tests.jar" || sample_rc=$?
if [ $sample_rc -eq 0 ]; then
    java -Djna.library.path="$(dirname "$LIB")" -Dsmolvlm.fixtures="$ROOT/tests/fixtures" \
        -cp "$KT/sample-tests.jar:$KT/tests.jar:$KT/ffi.jar:$TESTDEPS" dev.smolvlm.testing.JUnitSuiteKt "Kotlin sample" \
        dev.smolvlm.sample.state.ModelSetupTest dev.smolvlm.sample.state.LiveCaptioningTest || sample_rc=$?
else
    echo "Kotlin sample: 0 passed, 1 failed (does not compile)"
fi

# ---- Android type-check -------------------------------------------------------------------
# Compiles the SDK (src/main), its Android-only converters (src/android) and the sample app
# (android/sample) against Android's platform classes: API 23, the only android.jar a package
# registry here has (Debian bullseye's libandroid-23-java, fetched with a private apt configuration
# that leaves the system's sources alone); minSdk 26 only adds to it. The generated bindings go in
# as the JVM-compiled ffi.jar (they use java.lang.ref.Cleaner, which API 23 lacks). AndroidX and
# CameraX are in no registry here: the code is checked against the stand-ins in
# tools/android-stubs (the declarations it uses, in the published shapes). The sample's R class
# comes from Debian's aapt (aapt1) over its resources; AGP takes the package name from the build
# file's namespace, aapt from the manifest, so a copy of the manifest gets it.
android_jar() {
    local dir=$CACHE/android jar=$CACHE/android/android-23.jar
    [ -s "$jar" ] && { echo "$jar"; return 0; }
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/deb"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main" > "$dir/sources.list"
    local o=(-o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" -o APT::Sandbox::User=root)
    apt-get "${o[@]}" update -qq >"$dir/apt.log" 2>&1 || return 1
    (cd "$dir/deb" && apt-get "${o[@]}" download libandroid-23-java >>"$dir/apt.log" 2>&1) || return 1
    rm -rf "$dir/x" && dpkg -x "$dir"/deb/libandroid-23-java_*.deb "$dir/x" || return 1
    cp "$dir/x/usr/share/java/com.android.android-23.jar" "$jar" && rm -rf "$dir/x" "$dir/deb" "$dir/lists" "$dir/cache"
    echo "$jar"
}
android_rc=0
if [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] && AJAR=$(android_jar); then
    echo "type-checking the SDK, its Android converters and the sample app against android.jar (API 23)"
    SAMPLE=android/sample/src/main
    RGEN=$KT/sample-r
    rm -rf "$RGEN" "$KT/android-check" && mkdir -p "$RGEN/gen"
    sed 's|<manifest |<manifest package="dev.smolvlm.sample" |' "$SAMPLE/AndroidManifest.xml" > "$RGEN/AndroidManifest.xml"
    aapt package -m -J "$RGEN/gen" -M "$RGEN/AndroidManifest.xml" -S "$SAMPLE/res" -I "$AJAR" || android_rc=$?
    # the README's Android examples too
    python3 tools/readme_example.py readme-kotlin-android "package dev.smolvlm.readme" > "$RGEN/ReadmeAndroid.kt"
    python3 tools/readme_example.py readme-kotlin-android-video "package dev.smolvlm.readme" > "$RGEN/ReadmeAndroidVideo.kt"
    # Platform classes with members newer than API 23 (tools/android-stubs/platform): compiled into a
    # folder that goes before android.jar on the classpath (a class on the classpath hides a source
    # file of the same name from kotlinc, so they cannot be sources; the AndroidX stand-ins are
    # passed as files, since a folder above their package root would misname their packages), after
    # checking with javap that each member not listed on the stand-in's "Newer than API 23:" line is
    # declared exactly so in android.jar.
    PSTUBS=$KT/platform-stubs
    rm -rf "$PSTUBS" && mkdir -p "$PSTUBS"
    if [ $android_rc -eq 0 ] && javac -nowarn -d "$PSTUBS" -cp "$AJAR" $(find tools/android-stubs/platform -name '*.java'); then
        for src in $(find tools/android-stubs/platform -name '*.java'); do
            cls=$(echo "${src#tools/android-stubs/platform/}" | sed 's|\.java$||; s|/|.|g')
            newer=$(sed -n 's|^// Newer than API 23: *||p' "$src")
            # A member's name is the word before "(" (methods) or " =" / ";" (fields).
            extra=$(comm -23 <(javap -public -constants -cp "$PSTUBS" "$cls" | sort) <(javap -public -constants -cp "$AJAR" "$cls" | sort) \
                | { grep -v '^Compiled from\|^public class\|^}' || true; } | sed -E 's/^ *//; s/\(.*//; s/ =.*//; s/;$//; s/.* //' | sort -u | tr '\n' ' ')
            if [ "$(echo $extra)" != "$(echo $newer | tr ' ' '\n' | sort -u | tr '\n' ' ' | xargs)" ]; then
                echo "Android: the stand-in $src differs from android.jar (API 23) beyond its 'Newer than API 23:' list ($newer): $extra"
                android_rc=1
            fi
        done
    else
        android_rc=1
    fi
    [ $android_rc -eq 0 ] && { "$K/bin/kotlinc" -nowarn -no-jdk android/sdk/src/main/kotlin android/sdk/src/android/kotlin \
        "$SAMPLE/kotlin" "$RGEN/gen" "$RGEN/ReadmeAndroid.kt" "$RGEN/ReadmeAndroidVideo.kt" $(find tools/android-stubs/androidx -name '*.java' -o -name '*.kt') -cp "$PSTUBS:$AJAR:$KT/ffi.jar:$DEPS" -d "$KT/android-check" || android_rc=$?; }
    STUBS=$(find tools/android-stubs -name '*.java' -o -name '*.kt' | wc -l)
    [ $android_rc -eq 0 ] && echo "Android: the SDK, its converters and the sample app compile against android.jar (API 23) + $STUBS stand-in stubs" \
        || echo "Android: the type-check against android.jar FAILED"
else
    echo "Android: type-check skipped (android.jar could not be fetched from Debian bullseye; see .cache/android/apt.log)"
fi

# ---- Swift --------------------------------------------------------------------------------
# The Swift package commits what is generated from the library (a package added by URL gets no
# build step): the uniffi bindings, the C header and module map, and the public value types
# derived from them (tools/swift_types.py). They must match this build; UPDATE_BINDINGS=1 writes
# them.
swift_rc=0
swift_types=$(mktemp)
python3 tools/swift_types.py "$GEN/swift/SmolVLMFFI.swift" >"$swift_types"
committed=(
    "$GEN/swift/SmolVLMFFI.swift:ios/Sources/SmolVLMFFI/SmolVLMFFI.swift"
    "$GEN/swift/SmolVLMFFIC.h:ios/Sources/SmolVLMFFIC/include/SmolVLMFFIC.h"
    "$GEN/swift/SmolVLMFFIC.modulemap:ios/Sources/SmolVLMFFIC/include/module.modulemap"
    "$swift_types:ios/Sources/SmolVLM/Types.swift"
)
stale=()
for pair in "${committed[@]}"; do
    if [ "${UPDATE_BINDINGS:-0}" = 1 ]; then
        cp "${pair%%:*}" "${pair#*:}"
    elif ! cmp -s "${pair%%:*}" "${pair#*:}"; then
        stale+=("${pair#*:}")
    fi
done
rm -f "$swift_types"
if [ ${#stale[@]} = 0 ]; then
    echo "Swift bindings: the ${#committed[@]} committed generated files match the library"
else
    echo "Swift bindings: STALE (regenerate with UPDATE_BINDINGS=1 bash tools/test_bindings.sh): ${stale[*]}"
    swift_rc=1
fi
if [ "${SKIP_SWIFT:-0}" != 1 ]; then
    bash tools/test_swift.sh || swift_rc=1
fi
[ $kotlin_rc -eq 0 ] && [ $sample_rc -eq 0 ] && [ $android_rc -eq 0 ] && [ $swift_rc -eq 0 ]
