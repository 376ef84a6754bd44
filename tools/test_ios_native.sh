#!/usr/bin/env bash
# The iOS binary artifact without Xcode (issue 17), run by tools/test_aarch64.sh.
#
# Runs tools/build_xcframework.sh in Linux mode with its quick check build (--dev) and inspects
# what it made. What it proves:
# - libsmolvlm_ffi.a, with its default features (`download`: ureq, rustls, ring's C and assembly),
#   compiles for aarch64-apple-ios with `--features metal` (candle's Metal backend and objc2: this
#   also covers a `cargo check -p smolvlm(-ffi) --target aarch64-apple-ios --features metal`), and
#   for the simulators, aarch64-apple-ios-sim and x86_64-apple-ios (nightly build-std where rustup
#   has no rust-std for them);
# - every member of each archive is a 64-bit Mach-O object for the right CPU (ARM64, X86_64) and
#   platform (iOS for the device, the iOS simulator for the others; llvm-objdump's load commands),
#   with a deployment target no newer than IPHONEOS_DEPLOYMENT_TARGET (15.0);
# - llvm-lipo joins the two simulator slices (`-archs`: arm64 x86_64) and each slice taken back
#   out of the fat library is the library it was made from;
# - the XCFramework has exactly the expected files, its Info.plist (python3 plistlib) names the two
#   libraries with the identifiers, paths, architectures, platform and variant that xcodebuild
#   writes, its module map defines module SmolVLMFFIC over the header next to it;
# - each library defines exactly the host library's uniffi functions (uniffi_smolvlm_ffi_*,
#   ffi_smolvlm_ffi_*: llvm-nm, Mach-O's leading underscore removed), and every function that the
#   generated C header declares;
# - the Swift bindings that the pinned uniffi-bindgen generates from the device library and from
#   the fat simulator library are identical to those generated from the host library, and to the
#   package's committed ios/Sources/SmolVLMFFI/SmolVLMFFI.swift and
#   ios/Sources/SmolVLMFFIC/include/SmolVLMFFIC.h;
# - the frameworks each library calls into, from its undefined symbols (_MTL* Metal, _NS* and
#   _OBJC_CLASS_$_NS* Foundation, _CF* CoreFoundation, _Sec* Security, ...; the C library,
#   libobjc and CommonCrypto are in every app), are the ones rustc names for it
#   (`--print native-static-libs`), and each is linked by the root Package.swift
#   (`.linkedFramework("X")`); no undefined symbol is left unaccounted for;
# - the zip holds the .xcframework folder at its root, the same files, and its checksum file is
#   the zip's SHA-256 (what `swift package compute-checksum` prints).
# What it cannot prove: there is no Apple SDK, Xcode, Mac or simulator here. ring's C is compiled
# by Debian's clang against the build script's stand-in SDK (a few headers), the Info.plist is
# the script's (not xcodebuild's), the simulator slices come from a nightly rustc, and nothing is
# linked into an app or run: no symbol is resolved against the SDK's frameworks, the Metal backend
# is compiled, not run. What ships is the Mac release build (tools/build_xcframework.sh there).
#
# The build is the dev profile with dependencies at opt-level 0 (gemm-f16 keeps opt-level 3) and
# no debug info, no incremental: about 2 minutes per target on a cold cache with 2 cores (the
# whole script ~7 minutes once the host library is built, ~45 s warm, most of it the zip); the
# layout, the exports and the bindings are checked, not the speed of the code. It adds ~4 GB
# under target/ (three targets' builds, the XCFramework and its zip).
# Prints one `iOS native: N passed, N failed` line; exits non-zero if an assertion fails.
# Tools: Debian's llvm-14 (llvm-nm, llvm-objdump, llvm-lipo, llvm-ar), clang-14, zip, python3
# (apt-get installs the first three when missing, as root); rustup's nightly toolchain and its
# rust-src for the simulator targets. Missing tools, or a toolchain that cannot be installed,
# print a SKIPPED line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET_DIR/ios
NAME=SmolVLMFFIC
MIN_IOS=${IPHONEOS_DEPLOYMENT_TARGET:-15.0}
t0=$SECONDS

source tools/checks.sh  # llvm_tool, ok, bad
tools_ok() {
    llvm_tool llvm-nm >/dev/null && llvm_tool llvm-objdump >/dev/null && llvm_tool llvm-lipo >/dev/null &&
        llvm_tool llvm-ar >/dev/null && llvm_tool clang >/dev/null && command -v zip >/dev/null &&
        command -v python3 >/dev/null
}
if ! tools_ok && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        llvm-14 clang-14 zip >/dev/null; } || echo "iOS native: apt-get install failed"
fi
if ! tools_ok; then
    echo "SKIPPED: iOS native libraries (needs llvm-14, clang-14, zip and python3)"
    exit 0
fi
NM=$(llvm_tool llvm-nm)
OBJDUMP=$(llvm_tool llvm-objdump)
LIPO=$(llvm_tool llvm-lipo)


# The host library and the generator, as tools/test_bindings.sh builds them (a no-op after it).
echo "building the host library and uniffi-bindgen"
cargo build --locked -q -p smolvlm-ffi -p uniffi-bindgen
host_so=$TARGET_DIR/debug/libsmolvlm_ffi.so
bindgen=$TARGET_DIR/debug/uniffi-bindgen
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT

# ---- the build script, Linux mode, check build --------------------------------------------------
tb=$SECONDS
rc=0
bash tools/build_xcframework.sh --dev --linux >"$gen/build.log" 2>&1 || rc=$?
build_s=$((SECONDS - tb))
if [ "$rc" = 3 ]; then
    grep 'build_xcframework:' "$gen/build.log" || true
    echo "SKIPPED: iOS native libraries (a tool or toolchain could not be had)"
    exit 0
fi
# Its summary lines (the libraries and their links, lipo, zip, checksum); all of it on failure.
if [ "$rc" = 0 ]; then
    grep -E '^  [a-z0-9_]+-apple-ios[a-z-]*: |^(simulator library|zip|checksum|build_xcframework):' "$gen/build.log" | sed 's/^ */  | /'
    ok "tools/build_xcframework.sh --dev --linux: ${build_s} s (builds, lipo, bindings, XCFramework, zip)"
else
    tail -60 "$gen/build.log"
    bad "tools/build_xcframework.sh --dev --linux failed (exit $rc) after ${build_s} s"
fi

# Defined and undefined external symbols of an archive; --no-llvm-bc: the objects of rustup's std
# embed LLVM bitcode newer than llvm-14 reads, their Mach-O symbol tables are what counts.
defined() { "$NM" --no-llvm-bc -g --defined-only "$1" 2>/dev/null | awk 'NF >= 3 { print $3 }' | sort -u; }
undefined() {
    comm -23 <("$NM" --no-llvm-bc -u "$1" 2>/dev/null | awk '$1 == "U" { print $2 } NF == 1 && $1 !~ /:$/ { print $1 }' | sort -u) \
        <(defined "$1")
}
uniffi_symbols() { sed 's/^_//' | grep -E '^(uniffi_smolvlm_ffi_|ffi_smolvlm_ffi_)' || true; }
host_exports=$("$NM" -D --defined-only "$host_so" | awk '{ print $3 }' | uniffi_symbols | sort -u)
"$bindgen" generate --library "$host_so" --language swift --out-dir "$gen/host" --no-format >/dev/null
header=$gen/host/$NAME.h
header_fns=$(grep -oE '\b(uniffi_smolvlm_ffi_[A-Za-z0-9_]+|ffi_smolvlm_ffi_[A-Za-z0-9_]+)\(' "$header" | tr -d '(' | sort -u)

# The framework (or system library) that an undefined symbol comes from; `?` when unknown.
framework_of() {
    case $1 in
        _OBJC_CLASS_\$_MTL* | _OBJC_METACLASS_\$_MTL* | _MTL* | _kMTL*) echo Metal ;;
        _OBJC_CLASS_\$_MPS* | _OBJC_METACLASS_\$_MPS* | _MPS*) echo MetalPerformanceShaders ;;
        _OBJC_CLASS_\$_NS* | _OBJC_METACLASS_\$_NS* | _NS[A-Z]*) echo Foundation ;;
        _CF* | _kCF*) echo CoreFoundation ;;
        _Sec* | _kSec*) echo Security ;;
        _CG* | _kCG*) echo CoreGraphics ;;
        _CV* | _kCV*) echo CoreVideo ;;
        _IOSurface* | _kIOSurface*) echo IOSurface ;;
        _SC* | _kSC*) echo SystemConfiguration ;;
        _objc_* | _class_* | _sel_* | _method_* | _ivar_* | _protocol_* | _object_* | _OBJC_*) echo libobjc ;;
        _CC*) echo libSystem ;;  # CommonCrypto (std's random bytes) is part of libSystem
        __R* | __ZN*) echo "?" ;;  # a Rust symbol not defined in the archive
        _[a-z_]*) echo libSystem ;;  # libc, libm, pthread, dyld, blocks, unwinder, compiler-rt
        *) echo "?" ;;
    esac
}
package_frameworks=
[ -f Package.swift ] && package_frameworks=$(grep -oE '\.linkedFramework\("[A-Za-z0-9_]+"' Package.swift |
    sed -E 's/.*"(.*)"/\1/' | sort -u)
all_frameworks=()

# ---- each static library ----------------------------------------------------------------------
check_lib() {  # check_lib TRIPLE CPU PLATFORM
    local triple=$1 cpu=$2 platform=$3 lib=$TARGET_DIR/$1/debug/libsmolvlm_ffi.a
    if [ ! -f "$lib" ] || [ "$rc" != 0 ]; then
        bad "$triple: no library built (${lib#"$ROOT"/})"
        return
    fi
    ok "$triple: builds, ${lib#"$ROOT"/} ($(du -h "$lib" | cut -f1))"

    # Mach headers (magic cputype ...) and the platform of each member: LC_BUILD_VERSION's
    # platform and minos, or the older LC_VERSION_MIN_IPHONEOS (rustup's prebuilt std: iOS 10.0).
    local heads members cpus platforms mins
    heads=$("$OBJDUMP" --macho --private-headers "$lib" 2>&1)
    members=$(grep -c '^Mach header' <<<"$heads" || true)
    cpus=$(awk '/^Mach header/ { getline; getline; print $1, $2, $5 }' <<<"$heads" | sort | uniq -c | sed 's/^ *//' | paste -sd ',')
    platforms=$(awk '/cmd LC_BUILD_VERSION/ { getline; getline; print $2 } /cmd LC_VERSION_MIN_IPHONEOS/ { print "ios(min)" }' <<<"$heads" | sort | uniq -c | sed 's/^ *//' | paste -sd ',')
    mins=$(awk '/^ *minos / { print $2 } /cmd LC_VERSION_MIN_IPHONEOS/ { getline; getline; print $2 }' <<<"$heads" | sort -uV | paste -sd ' ')
    local want_platforms="$members $platform"
    [ "$platform" = ios ] && want_platforms=$(awk -v m="$members" '/cmd LC_BUILD_VERSION/ { b++ } /cmd LC_VERSION_MIN_IPHONEOS/ { v++ }
        END { if (v) printf "%d ios,%d ios(min)", m - v, v; else printf "%d ios", m }' <<<"$heads")
    local newest=${mins##* }
    if [ "$members" -gt 0 ] && [ "$cpus" = "$members MH_MAGIC_64 $cpu OBJECT" ] &&
        [ "$platforms" = "$want_platforms" ] && [ "$(printf '%s\n' "$newest" "$MIN_IOS" | sort -V | tail -1)" = "$MIN_IOS" ]; then
        ok "$triple: all $members members are 64-bit Mach-O $cpu objects for platform $platform (deployment targets: $mins)"
    else
        bad "$triple: Mach-O members: $members; cputypes: ${cpus:-none}; platforms: ${platforms:-none} (want $want_platforms); deployment targets: ${mins:-none} (want <= $MIN_IOS)"
        grep -m3 -i 'error' <<<"$heads" || true
    fi

    local exports fns
    defined "$lib" >"$gen/$triple.defined"
    exports=$(uniffi_symbols <"$gen/$triple.defined" | sort -u)
    fns=$(grep -c '^uniffi_smolvlm_ffi_fn_' <<<"$exports" || true)
    if [ "$fns" -gt 0 ] && [ "$exports" = "$host_exports" ]; then
        ok "$triple: defines the host library's $(grep -c . <<<"$exports") uniffi symbols ($fns uniffi_smolvlm_ffi_fn_*)"
    else
        bad "$triple: the uniffi symbols differ from the host library's (< host, > $triple):"
        diff <(echo "$host_exports") <(echo "$exports") | head -20 || true
    fi
    local missing
    missing=$(comm -23 <(echo "$header_fns") <(sed 's/^_//' "$gen/$triple.defined" | sort -u))
    if [ -n "$header_fns" ] && [ -z "$missing" ]; then
        ok "$triple: defines all $(grep -c . <<<"$header_fns") functions that $NAME.h declares"
    else
        bad "$triple: $NAME.h declares functions the library lacks: $(head -5 <<<"$missing" | paste -sd ' ')"
    fi

    # Undefined symbols -> frameworks; rustc's own list (native-static-libs.txt) must agree.
    local sym fw frameworks=() unknown=() system=() rustc_fw
    undefined "$lib" >"$gen/$triple.undefined"
    while read -r sym; do
        [ -n "$sym" ] || continue
        fw=$(framework_of "$sym")
        case $fw in
            "?") unknown+=("$sym") ;;
            lib*) system+=("$fw") ;;
            *) frameworks+=("$fw") ;;
        esac
    done <"$gen/$triple.undefined"
    local fw_list sys_list
    fw_list=$( (IFS=$'\n'; echo "${frameworks[*]:-}") | awk 'NF' | sort | uniq -c | awk '{ printf "%s (%d symbols) ", $2, $1 }')
    sys_list=$( (IFS=$'\n'; echo "${system[*]:-}") | awk 'NF' | sort | uniq -c | awk '{ printf "%s (%d) ", $2, $1 }')
    echo "  $triple needs: frameworks: ${fw_list:-none}; system libraries: ${sys_list:-none}"
    if [ ${#unknown[@]} = 0 ]; then
        ok "$triple: every one of its $(grep -c . "$gen/$triple.undefined") undefined symbols maps to a framework or system library"
    else
        bad "$triple: undefined symbols from no known framework: ${unknown[*]:0:10}"
    fi
    local fw_names
    fw_names=$( (IFS=$'\n'; echo "${frameworks[*]:-}") | awk 'NF' | sort -u)
    rustc_fw=$(sed -n "s/^$triple: //p" "$OUT/native-static-libs.txt" 2>/dev/null |
        { grep -oE -- '-framework [A-Za-z0-9_]+' || true; } | awk '{ print $2 }' | sort -u)
    if [ "$fw_names" = "$rustc_fw" ]; then
        ok "$triple: the frameworks its symbols need = those in rustc's native-static-libs: $(paste -sd ' ' <<<"${rustc_fw:-none}")"
    else
        bad "$triple: frameworks from symbols ($(paste -sd ' ' <<<"$fw_names")) != rustc's native-static-libs ($(paste -sd ' ' <<<"$rustc_fw"))"
    fi
    [ -z "$fw_names" ] || mapfile -t -O "${#all_frameworks[@]}" all_frameworks <<<"$fw_names"
}
check_lib aarch64-apple-ios ARM64 ios
check_lib aarch64-apple-ios-sim ARM64 iossimulator
check_lib x86_64-apple-ios X86_64 iossimulator

# ---- the simulator library: llvm-lipo ---------------------------------------------------------
xcf=$OUT/$NAME.xcframework
fat=$xcf/ios-arm64_x86_64-simulator/libsmolvlm_ffi.a
if [ -f "$fat" ]; then
    archs=$("$LIPO" -archs "$fat" | tr ' ' '\n' | awk 'NF' | sort | paste -sd ' ')
    if [ "$archs" = "arm64 x86_64" ]; then
        ok "llvm-lipo joins the simulator slices: -archs $archs"
    else
        bad "the simulator library's architectures are '$archs', expected arm64 x86_64"
    fi
    for pair in arm64:aarch64-apple-ios-sim x86_64:x86_64-apple-ios; do
        "$LIPO" -thin "${pair%%:*}" "$fat" -output "$gen/thin.a"
        if cmp -s "$gen/thin.a" "$TARGET_DIR/${pair#*:}/debug/libsmolvlm_ffi.a"; then
            ok "its ${pair%%:*} slice is ${pair#*:}/debug/libsmolvlm_ffi.a, byte for byte"
        else
            bad "its ${pair%%:*} slice differs from ${pair#*:}/debug/libsmolvlm_ffi.a"
        fi
        rm -f "$gen/thin.a"
    done
else
    bad "no simulator library ${fat#"$ROOT"/}"
fi

# ---- the XCFramework --------------------------------------------------------------------------
expected="Info.plist
ios-arm64/Headers/$NAME/$NAME.h
ios-arm64/Headers/$NAME/module.modulemap
ios-arm64/libsmolvlm_ffi.a
ios-arm64_x86_64-simulator/Headers/$NAME/$NAME.h
ios-arm64_x86_64-simulator/Headers/$NAME/module.modulemap
ios-arm64_x86_64-simulator/libsmolvlm_ffi.a"
found=$( [ -d "$xcf" ] && cd "$xcf" && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort)
if [ "$found" = "$expected" ]; then
    ok "${xcf#"$ROOT"/}: the expected $(grep -c . <<<"$expected") files"
else
    bad "${xcf#"$ROOT"/}: files differ (< expected, > found):"
    diff <(echo "$expected") <(echo "$found") || true
fi
if cmp -s "$xcf/ios-arm64/libsmolvlm_ffi.a" "$TARGET_DIR/aarch64-apple-ios/debug/libsmolvlm_ffi.a"; then
    ok "ios-arm64/libsmolvlm_ffi.a is the device library"
else
    bad "ios-arm64/libsmolvlm_ffi.a is not target/aarch64-apple-ios/debug/libsmolvlm_ffi.a"
fi
if plist=$(python3 - "$xcf" <<'EOF' 2>&1
import os, plistlib, sys
xcf = sys.argv[1]
with open(os.path.join(xcf, "Info.plist"), "rb") as f:
    p = plistlib.load(f)
assert p.get("CFBundlePackageType") == "XFWK", p.get("CFBundlePackageType")
assert p.get("XCFrameworkFormatVersion") == "1.0", p.get("XCFrameworkFormatVersion")
libs = {l["LibraryIdentifier"]: l for l in p["AvailableLibraries"]}
want = {
    "ios-arm64": (["arm64"], None),
    "ios-arm64_x86_64-simulator": (["arm64", "x86_64"], "simulator"),
}
assert sorted(libs) == sorted(want), sorted(libs)
for ident, (archs, variant) in want.items():
    l = libs[ident]
    assert l["LibraryPath"] == "libsmolvlm_ffi.a", (ident, l["LibraryPath"])
    assert l.get("BinaryPath", "libsmolvlm_ffi.a") == "libsmolvlm_ffi.a", (ident, l["BinaryPath"])
    assert l["HeadersPath"] == "Headers", (ident, l["HeadersPath"])
    assert sorted(l["SupportedArchitectures"]) == archs, (ident, l["SupportedArchitectures"])
    assert l["SupportedPlatform"] == "ios", (ident, l["SupportedPlatform"])
    assert l.get("SupportedPlatformVariant") == variant, (ident, l.get("SupportedPlatformVariant"))
    assert os.path.isfile(os.path.join(xcf, ident, l["LibraryPath"])), ident
    assert os.path.isdir(os.path.join(xcf, ident, l["HeadersPath"])), ident
print(", ".join(f"{i} ({' '.join(libs[i]['SupportedArchitectures'])}"
                f"{', ' + libs[i]['SupportedPlatformVariant'] if 'SupportedPlatformVariant' in libs[i] else ''})"
                for i in sorted(libs)))
EOF
); then
    ok "Info.plist (plistlib): XFWK, format 1.0, $plist; paths, headers, platform ios"
else
    bad "Info.plist: $(tail -1 <<<"$plist")"
fi
mm_ok=1
for id in ios-arm64 ios-arm64_x86_64-simulator; do
    hdir=$xcf/$id/Headers/$NAME
    grep -qE "^module $NAME \{" "$hdir/module.modulemap" 2>/dev/null &&
        grep -qE "header \"$NAME.h\"" "$hdir/module.modulemap" && cmp -s "$hdir/$NAME.h" "$header" || mm_ok=0
done
if [ "$mm_ok" = 1 ]; then
    ok "Headers/$NAME/module.modulemap defines module $NAME over header \"$NAME.h\" (= the host library's header) in both slices"
else
    bad "Headers/$NAME: the module map does not define module $NAME over $NAME.h, or the header differs from the host library's"
fi

# ---- Swift bindings -----------------------------------------------------------------------------
for src in ios-arm64 ios-arm64_x86_64-simulator; do
    lib=$xcf/$src/libsmolvlm_ffi.a
    if [ -f "$lib" ] && "$bindgen" generate --library "$lib" --language swift --out-dir "$gen/$src" --no-format >/dev/null 2>"$gen/$src.err" &&
        [ -f "$gen/$src/SmolVLMFFI.swift" ] && diff -r "$gen/host" "$gen/$src" >"$gen/$src.diff"; then
        ok "the Swift bindings generated from $src/libsmolvlm_ffi.a ($(ls "$gen/$src" | paste -sd ' ')) = those from the host library"
    else
        bad "the Swift bindings generated from $src/libsmolvlm_ffi.a differ from the host library's (or failed):"
        head -20 "$gen/$src.err" "$gen/$src.diff" 2>/dev/null || true
    fi
done
if cmp -s "$OUT/SmolVLMFFI.swift" "$gen/host/SmolVLMFFI.swift"; then
    ok "target/ios/SmolVLMFFI.swift (the build script's copy) = the generated file"
else
    bad "target/ios/SmolVLMFFI.swift differs from the generated file (or is missing)"
fi
for pair in "SmolVLMFFI.swift:ios/Sources/SmolVLMFFI/SmolVLMFFI.swift" "$NAME.h:ios/Sources/$NAME/include/$NAME.h"; do
    generated=${pair%%:*} committed=${pair#*:}
    if [ ! -f "$committed" ]; then
        bad "$committed (the package's committed copy) is missing"
    elif cmp -s "$gen/ios-arm64/$generated" "$committed"; then
        ok "$committed (committed) = the one generated from the iOS library"
    else
        bad "$committed (committed) differs from the one generated from the iOS library (< committed, > generated):"
        diff "$committed" "$gen/ios-arm64/$generated" | head -20 || true
    fi
done

# ---- frameworks in Package.swift ----------------------------------------------------------------
needed=$( (IFS=$'\n'; echo "${all_frameworks[*]:-}") | awk 'NF' | sort -u)
echo "  frameworks the static libraries need: $(paste -sd ' ' <<<"$needed")"
if [ ! -f Package.swift ]; then
    bad "Package.swift is missing: cannot check its linkerSettings for $(paste -sd ' ' <<<"$needed")"
else
    missing=$(comm -23 <(echo "$needed") <(echo "$package_frameworks") | awk 'NF')
    if [ -n "$needed" ] && [ -z "$missing" ]; then
        ok "Package.swift links each of them (.linkedFramework: $(paste -sd ' ' <<<"$package_frameworks"))"
    else
        bad "Package.swift does not link $(paste -sd ' ' <<<"$missing") (.linkedFramework(\"X\"); it links: $(paste -sd ' ' <<<"${package_frameworks:-nothing}"))"
    fi
fi

# ---- zip and checksum ---------------------------------------------------------------------------
zip_file=$OUT/$NAME.xcframework.zip
if zip_check=$(python3 - "$zip_file" "$xcf" <<'EOF' 2>&1
import os, sys, zipfile
zf, xcf = sys.argv[1], sys.argv[2]
names = zipfile.ZipFile(zf).namelist()
root = os.path.basename(xcf) + "/"
outside = [n for n in names if not n.startswith(root)]
assert not outside, f"entries outside {root}: {outside[:3]}"
files = sorted(n[len(root):] for n in names if not n.endswith("/"))
want = sorted(os.path.relpath(os.path.join(d, f), xcf) for d, _, fs in os.walk(xcf) for f in fs)
assert files == want, f"zip files {files} != folder files {want}"
print(f"{len(files)} files under {root}")
EOF
); then
    ok "${zip_file#"$ROOT"/} ($(du -h "$zip_file" | cut -f1)): $zip_check, as in the folder"
else
    bad "${zip_file#"$ROOT"/}: $(tail -1 <<<"$zip_check")"
fi
sum=$(cat "$zip_file.checksum" 2>/dev/null || true)
if [[ $sum =~ ^[0-9a-f]{64}$ ]] && [ "$sum" = "$(sha256sum "$zip_file" | cut -d' ' -f1)" ]; then
    ok "${zip_file#"$ROOT"/}.checksum: $sum = sha256sum of the zip"
else
    bad "${zip_file#"$ROOT"/}.checksum: '${sum}' is not the zip's SHA-256"
fi

echo "iOS native: $passed passed, $failed failed"
echo "iOS native steps: $((SECONDS - t0)) s (build script: $build_s s)"
[ "$failed" = 0 ]
