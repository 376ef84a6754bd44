#!/usr/bin/env bash
# The Android native library without the Android NDK (issue 16), run by tools/test_aarch64.sh.
#
# What it proves, for arm64 Android (aarch64-linux-android, the ABI of the phones):
# - libsmolvlm_ffi.so (the cdylib JNA loads in the app), with its default features, compiles and
#   LINKS for Android: rustc's own link line for the target, run by rust-lld (it ships with
#   rustup) with -z max-page-size=16384 (what 16 KB page devices need; NDK r28+ does it by
#   default) and -soname libsmolvlm_ffi.so. ring's C and assembly are compiled by Debian's
#   aarch64 cross gcc (the NDK's clang is not here);
# - what llvm-readelf reads in it: an ELF64 AArch64 shared object; every PT_LOAD segment aligned
#   to 16 KB (Align 0x4000, offset = address modulo 16 KB: what Google Play's 16 KB check reads);
#   SONAME libsmolvlm_ffi.so; no text relocations (Android refuses them since API 23); the dynamic
#   symbols export exactly the host library's uniffi functions (uniffi_smolvlm_ffi_fn_*,
#   ffi_smolvlm_ffi_rustbuffer_alloc, ...); no undefined symbol that only glibc has
#   (__errno_location, __*_chk, __isoc99_*, ...: code built against glibc would not load on bionic);
# - the Kotlin bindings that the pinned uniffi-bindgen generates from it are identical to the ones
#   generated from the host library (those the Kotlin suite compiles and tests).
# What it cannot prove: libc.so, libm.so, libdl.so and liblog.so are EMPTY stubs (there is no
# bionic here), so no import is checked against bionic's exports or API levels, and as rustc links
# them --as-needed the library records no DT_NEEDED (an NDK link records libc.so, libm.so,
# libdl.so); libunwind.a is an empty stub too, so the unwinder the NDK links in statically
# (_Unwind_*) stays undefined here; nothing is loaded or run on Android (no device, no emulator).
# What ships is the developer's build (cargo-ndk: NDK clang and bionic), not this one.
#
# By default only arm64 is checked. The emulator's x86_64-linux-android works the same way
# (ANDROID_NATIVE_TARGETS="aarch64-linux-android x86_64-linux-android"), but it is a second build
# of every dependency for another target: about 3 minutes more on a cold cache with 2 cores (about
# 1 s warm), for an ABI that only runs in the emulator.
# The build is the dev profile with dependencies at opt-level 0 (gemm-f16 keeps the opt-level 3
# that the workspace gives it) and no debug info: a cold build takes ~2 minutes instead of ~15 at
# opt-level 3; it is the link, the layout and the exports that are checked, not the code.
# Prints one `Android native: N passed, N failed` line; exits non-zero if an assertion fails.
# Tools: rustup's rust-lld, Debian's llvm-14 (llvm-readelf, llvm-mc, llvm-ar) and
# gcc-aarch64-linux-gnu, installed with apt-get when missing (as root). A target that rustup cannot
# add, or tools that cannot be installed, print a SKIPPED line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TARGETS=${ANDROID_NATIVE_TARGETS:-aarch64-linux-android}
t0=$SECONDS

source tools/checks.sh  # llvm_tool, ok, bad
tools_ok() {
    llvm_tool llvm-readelf >/dev/null && llvm_tool llvm-mc >/dev/null && llvm_tool llvm-ar >/dev/null &&
        command -v aarch64-linux-gnu-gcc >/dev/null
}
if ! tools_ok && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        llvm-14 gcc-aarch64-linux-gnu >/dev/null; } || echo "Android native: apt-get install failed"
fi
if ! tools_ok; then
    echo "SKIPPED: Android native library (needs llvm-14 and gcc-aarch64-linux-gnu)"
    exit 0
fi
READELF=$(llvm_tool llvm-readelf)
MC=$(llvm_tool llvm-mc)
AR=$(llvm_tool llvm-ar)
LLD=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/rust-lld
if [ ! -x "$LLD" ]; then
    echo "SKIPPED: Android native library (no rust-lld at $LLD)"
    exit 0
fi


# The host library and the generator, as tools/test_bindings.sh builds them (a no-op after it).
echo "building the host library and uniffi-bindgen"
cargo build --locked -q -p smolvlm-ffi -p uniffi-bindgen
host_so=$TARGET_DIR/debug/libsmolvlm_ffi.so
bindgen=$TARGET_DIR/debug/uniffi-bindgen
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
"$bindgen" generate --library "$host_so" --language kotlin --out-dir "$gen/host" --no-format >/dev/null

# Dynamic symbols, as llvm-readelf prints them: Num: Value Size Type Bind Vis Ndx Name.
exports() {
    "$READELF" --dyn-syms -W "$1" |
        awk '$7 != "UND" && $5 == "GLOBAL" && $8 ~ /^(uniffi_|ffi_smolvlm_ffi_)/ { print $8 }' | sort -u
}
imports() { "$READELF" --dyn-syms -W "$1" | awk '$7 == "UND" && $8 != "" { print $8 }' | sort -u; }
host_exports=$(exports "$host_so")

check_target() {
    local triple=$1 abi machine cc ar
    case $triple in
        aarch64-linux-android) abi=arm64 machine=AArch64 cc=aarch64-linux-gnu-gcc ar=aarch64-linux-gnu-ar ;;
        x86_64-linux-android) abi=x86_64 machine=X86-64 cc=gcc ar=ar ;;
        *) bad "$triple: not an Android target this script knows"; return ;;
    esac
    if ! { command -v rustup >/dev/null && rustup target add "$triple" >/dev/null 2>&1; }; then
        echo "SKIPPED: rustup target add $triple failed"
        return
    fi

    # Stub bionic: what rustc's link line for the target asks for (-ldl -llog -lunwind -lm -lc),
    # libc.so, libm.so, libdl.so and liblog.so as empty shared objects with their sonames, and an
    # empty libunwind.a (the NDK has only the static one). A fixed path: the link flags are part
    # of cargo's fingerprint of the library.
    local stubs=$TARGET_DIR/android-stubs/$triple l
    mkdir -p "$stubs"
    "$MC" -triple="$triple" -filetype=obj -o "$stubs/empty.o" /dev/null
    for l in c m dl log; do
        "$LLD" -flavor gnu -shared -soname "lib$l.so" -o "$stubs/lib$l.so" "$stubs/empty.o"
    done
    rm -f "$stubs/libunwind.a" && "$AR" rc "$stubs/libunwind.a"

    # Only the cdylib (not the crate's staticlib and rlib); the link flags go to the library alone
    # (after `--`), so the dependencies build without them; ring's build script takes its C
    # compiler from CC_<target>. No incremental state.
    local so=$TARGET_DIR/$triple/debug/libsmolvlm_ffi.so
    echo "building libsmolvlm_ffi.so for $triple (rust-lld, stub bionic)"
    if env CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=0 "CC_${triple//-/_}=$cc" "AR_${triple//-/_}=$ar" \
        cargo rustc --locked -q -p smolvlm-ffi --lib --target "$triple" --crate-type cdylib \
        --config 'profile.dev.package."*".opt-level=0' -- \
        -C linker="$LLD" -C linker-flavor=ld.lld -C link-arg=-L"$stubs" \
        -C link-arg=-zmax-page-size=16384 -C link-arg=-soname=libsmolvlm_ffi.so && [ -f "$so" ]; then
        ok "$abi: links, ${so#"$ROOT"/} ($(du -h "$so" | cut -f1))"
    else
        bad "$abi: the $triple build or link failed"
        return
    fi

    local hdr
    hdr=$("$READELF" -hW "$so")
    if grep -qE 'Class:\s+ELF64' <<<"$hdr" && grep -qE "Machine:.*\\b$machine\$" <<<"$hdr" &&
        grep -qE 'Type:\s+DYN' <<<"$hdr"; then
        ok "$abi: ELF64 $machine shared object (DYN)"
    else
        bad "$abi: not an ELF64 $machine shared object: $(grep -E 'Class|Machine|Type' <<<"$hdr" | tr -s ' \n' ' ')"
    fi

    # Program headers: LOAD offset vaddr paddr filesz memsz flags (may hold a space) align.
    local type off vaddr rest loads=0 misaligned=()
    while read -r type off vaddr rest; do
        [ "$type" = LOAD ] || continue
        loads=$((loads + 1))
        if [ "${rest##* }" != 0x4000 ] || [ $(((off - vaddr) % 0x4000)) != 0 ]; then
            misaligned+=("[offset $off vaddr $vaddr align ${rest##* }]")
        fi
    done < <("$READELF" -lW "$so")
    if [ "$loads" -gt 0 ] && [ ${#misaligned[@]} = 0 ]; then
        ok "$abi: 16 KB pages, all $loads PT_LOAD segments Align 0x4000 with offset = vaddr (mod 0x4000)"
    else
        bad "$abi: 16 KB pages, $loads PT_LOAD segments, misaligned: ${misaligned[*]:-(none found)}"
    fi

    local dyn soname needed
    dyn=$("$READELF" -dW "$so")
    soname=$(sed -nE 's/.*\(SONAME\).*\[(.*)\].*/\1/p' <<<"$dyn")
    if [ "$soname" = libsmolvlm_ffi.so ]; then
        ok "$abi: SONAME $soname"
    else
        bad "$abi: SONAME is '${soname:-(none)}', expected libsmolvlm_ffi.so"
    fi
    if grep -qE '\(TEXTREL\)|\(FLAGS\).*TEXTREL' <<<"$dyn"; then
        bad "$abi: text relocations (DT_TEXTREL), which Android refuses"
    else
        ok "$abi: no DT_TEXTREL"
    fi
    needed=$(sed -nE 's/.*\(NEEDED\).*\[(.*)\].*/\1/p' <<<"$dyn" | paste -sd ' ')

    local android_exports fns
    android_exports=$(exports "$so")
    fns=$(grep -c '^uniffi_smolvlm_ffi_fn_' <<<"$android_exports" || true)
    if [ "$fns" -gt 0 ] && grep -qx ffi_smolvlm_ffi_rustbuffer_alloc <<<"$android_exports" &&
        [ "$android_exports" = "$host_exports" ]; then
        ok "$abi: exports $(grep -c . <<<"$android_exports") uniffi symbols ($fns uniffi_smolvlm_ffi_fn_*, ffi_smolvlm_ffi_rustbuffer_alloc, ...), the host library's set"
    else
        bad "$abi: $fns uniffi_smolvlm_ffi_fn_* exports; the uniffi exports differ from the host library's (< host, > $abi):"
        diff <(echo "$host_exports") <(echo "$android_exports") | head -20 || true
    fi

    local undefined weak glibc_only
    undefined=$(imports "$so")
    weak=$("$READELF" --dyn-syms -W "$so" | awk '$7 == "UND" && $5 == "WEAK" { print $8 }' | sort -u | paste -sd ' ')
    glibc_only=$(grep -E '@GLIBC|^(__errno_location|__libc_.*|__isoc99_.*|__[fl]?xstat.*|gnu_get_libc_.*|__.*_chk)$' <<<"$undefined" || true)
    if [ -z "$glibc_only" ]; then
        ok "$abi: imports $(grep -c . <<<"$undefined") undefined symbols (weak: ${weak:-none}), none glibc-only; DT_NEEDED: ${needed:-none (empty stubs)}"
    else
        bad "$abi: imports glibc-only symbols: $(paste -sd ' ' <<<"$glibc_only")"
    fi

    "$bindgen" generate --library "$so" --language kotlin --out-dir "$gen/$abi" --no-format >/dev/null
    local kt
    kt=$(find "$gen/$abi" -name '*.kt' | wc -l)
    if [ "$kt" -gt 0 ] && diff -r "$gen/host" "$gen/$abi" >"$gen/$abi.diff"; then
        ok "$abi: the Kotlin bindings generated from it ($kt file, $(find "$gen/$abi" -name '*.kt' -exec cat {} + | wc -l) lines) = those from the host library"
    else
        bad "$abi: the Kotlin bindings generated from it ($kt files) differ from the host library's:"
        head -40 "$gen/$abi.diff"
    fi
}

for triple in $TARGETS; do
    check_target "$triple"
done
echo "Android native: $passed passed, $failed failed"
echo "Android native steps: $((SECONDS - t0)) s"
[ "$failed" = 0 ]
