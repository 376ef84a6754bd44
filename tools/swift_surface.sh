#!/usr/bin/env bash
# Checks of the Swift package that XCTest cannot make, run by tools/test_swift.sh inside the Swift
# 6 chroot after `swift build` (the package's modules are in .build/debug/Modules):
# - the Apple-only helpers (ios/Sources/SmolVLM/AppleImages.swift: CGImage, UIImage,
#   CVPixelBuffer, CGImagePropertyOrientation; AppleVideos.swift: AVAsset through
#   AVAssetImageGenerator) type-check against the stand-in modules in tools/apple-stubs, with a
#   probe that fails if their `#if canImport(...)` parts were skipped, and so does the README's
#   iOS example;
# - the public surface: an app's `import SmolVLM` sees the wrapper (a probe using it compiles)
#   and none of the generated layer (each probe naming a generated declaration must fail with
#   "cannot find");
# - the manifests: `swift package dump-package` of each variant of the root Package.swift and of
#   the sample's, without unsafe flags.
# Prints `Swift surface: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
MODULES=.build/debug/Modules
STUBS=.build/apple-stubs
CMAP=-fmodule-map-file=ios/Sources/SmolVLMFFIC/include/module.modulemap
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
source tools/checks.sh  # ok, bad

# ---- the stand-ins, then the SDK's sources against them ----------------------------------------
mkdir -p "$STUBS"
stubs_ok=1
for m in CoreGraphics ImageIO CoreVideo UIKit CoreMedia AVFoundation; do  # in dependency order
    swiftc -emit-module -parse-as-library -module-name "$m" -I "$STUBS" -o "$STUBS/$m.swiftmodule" \
        "tools/apple-stubs/$m.swift" >"$WORK/$m.log" 2>&1 || { stubs_ok=0; bad "stand-in $m: $(head -3 "$WORK/$m.log")"; }
done
cat >"$WORK/AppleProbe.swift" <<'EOF'
import AVFoundation
import CoreGraphics
import CoreVideo
import ImageIO
import SmolVLM
import UIKit

// Fails to compile if AppleImages.swift's Apple-only parts were left out.
func appleHelpersExist(cg: CGImage, ui: UIImage, buffer: CVPixelBuffer) throws -> [ImageInput] {
    [
        try ImageInput.cgImage(cg, orientation: ImageOrientation(CGImagePropertyOrientation.rightMirrored)),
        try ImageInput.uiImage(ui),
        try ImageInput.pixelBuffer(buffer, orientation: ImageOrientation(UIImage.Orientation.leftMirrored)),
        try ImageInput.frame(pixelBuffer: buffer, orientation: .camera(rotationAngle: 90, mirrored: true)),
    ]
}

// Fails to compile if AppleVideos.swift's Apple-only parts were left out.
func appleVideoHelpersExist(vlm: SmolVLM, asset: AVAsset, url: URL) async throws -> [VideoInput] {
    [try await vlm.readVideo(asset), try await vlm.readVideo(url: url)]
}
EOF
# The README's iOS examples (UIImage, AVFoundation video), as an app would compile them.
python3 tools/readme_example.py readme-swift-ios >"$WORK/ReadmeIOS.swift"
python3 tools/readme_example.py readme-swift-ios-video >"$WORK/ReadmeIOSVideo.swift"
if [ $stubs_ok = 1 ]; then
    # The package's module as an Apple platform builds it (the stand-ins in place of the SDK; Swift
    # 6 language mode, as the manifest's tools version gives the target), then clients of it: the
    # probe and the README's iOS examples.
    mkdir -p "$WORK/apple"
    if swiftc -swift-version 6 -emit-module -module-name SmolVLM -I "$STUBS" -I "$MODULES" -Xcc "$CMAP" \
        -o "$WORK/apple/SmolVLM.swiftmodule" ios/Sources/SmolVLM/*.swift >"$WORK/apple.log" 2>&1; then
        ok "AppleImages.swift (CGImage, UIImage, CVPixelBuffer, orientations) and AppleVideos.swift (AVAsset, AVAssetImageGenerator) type-check against the stand-ins in tools/apple-stubs"
        for client in AppleProbe:"every Apple helper" ReadmeIOS:"the README's iOS example" ReadmeIOSVideo:"the README's iOS video example"; do
            if swiftc -typecheck -I "$WORK/apple" -I "$STUBS" -I "$MODULES" -Xcc "$CMAP" "$WORK/${client%%:*}.swift" >"$WORK/${client%%:*}.log" 2>&1; then
                ok "a client using ${client#*:} type-checks against it"
            else
                bad "${client#*:} does not type-check: $(grep -E 'error:' "$WORK/${client%%:*}.log" | head -3)"
            fi
        done
    else
        bad "AppleImages.swift or AppleVideos.swift does not type-check against the stand-ins:"
        grep -E "error:" "$WORK/apple.log" | head -20
    fi
fi

# ---- the public surface ------------------------------------------------------------------------
client() {  # client NAME BODY: type-checks a file that imports only SmolVLM
    printf 'import Foundation\nimport SmolVLM\n\n%s\n' "$2" >"$WORK/$1.swift"
    swiftc -typecheck -I "$MODULES" -Xcc "$CMAP" "$WORK/$1.swift" >"$WORK/$1.log" 2>&1
}
if client public 'func useIt(_ vlm: SmolVLM, _ e: Error) async throws -> String {
    let chat = try vlm.newChat(defaults: GenerationConfig(maxTokens: 8))
    _ = try vlm.live(LiveConfig(prompt: "What is this?")).counters.framesPushed
    _ = (SmolVLM.catalog.first?.precision, SmolVLM.version, vlm.info.backend, ImageOrientation.right.isMirrored)
    if case SmolVLMError.contextOverflow(let tokens, let limit, _) = e { print(tokens, limit) }
    if case SmolVLMError.internal(_, let details) = e { print(details) }
    var text = ""
    for try await piece in chat.ask("Hi", images: [try .file("a.png").mirrored()]) { text += piece }
    let frames = [try ImageInput.file("f0.png"), try .file("f1.png")]
    let clip = try VideoInput(frames: frames, timestamps: [0, 0.5], duration: 1)
    let indices = try vlm.videoFrameIndices(frameCount: 130, duration: 65)
    let chosen = try VideoInput.chosen(frames: indices.map { frames[$0 % 2] }, timestamps: indices.map { Double($0) / 2 }, duration: 65)
    _ = (clip.frameCount, chosen.duration, vlm.info.videoFrameLimit, LoadOptions(maxVideoFrames: 8))
    for try await piece in chat.ask("What happens?", images: [], options: nil, videos: [clip, chosen]) { text += piece }
    return text + (chat.stats.map { "\($0.generatedTokens)" } ?? "")
}'; then
    ok "a client that imports only SmolVLM uses the wrapper API (SmolVLM, Chat, LiveCamera, ImageInput, VideoInput, SmolVLMError, records)"
else
    bad "a client of the public API does not compile:"
    grep -E "error:" "$WORK/public.log" | head -10
fi
for probe in "let _: SmolVlm? = nil" "let _: ChatSession? = nil" "let _: TokenStream? = nil" \
    "let _: LiveCaptioner? = nil" "let _: ModelDownload? = nil" "let _: SmolVlmError? = nil" \
    "func f() throws { try debugPanic(message: \"x\") }" "let _ = liveObjects()" "let _: LiveObjects? = nil"; do
    name=leak$((passed + failed))
    if client "$name" "$probe"; then
        bad "generated declaration visible through 'import SmolVLM': $probe"
    elif grep -qE "cannot find|no such module|not in scope" "$WORK/$name.log"; then
        ok "hidden: $probe"
    else
        bad "probe '$probe' failed for another reason: $(grep -E 'error:' "$WORK/$name.log" | head -2)"
    fi
done
# ---- the manifests, as SwiftPM reads them -------------------------------------------------------
# Each variant of the root manifest (the host library, the local XCFramework, a release's URL and
# checksum) and the sample's, dumped by `swift package dump-package` and checked: what an app
# adding the package by URL gets (a SmolVLM library product, a binary SmolVLMFFIC, the
# frameworks to link) and no unsafe flags, which SwiftPM refuses in a versioned dependency.
mkdir -p "$WORK/release"
sed 's|^let release: (url: String, checksum: String)? = nil$|let release: (url: String, checksum: String)? = (url: "https://example.com/SmolVLMFFIC.xcframework.zip", checksum: "'"$(printf '0%.0s' {1..64})"'")|' \
    Package.swift >"$WORK/release/Package.swift"
if cmp -s Package.swift "$WORK/release/Package.swift"; then
    bad "Package.swift has no 'let release: (url: String, checksum: String)? = nil' line for a release to set"
fi
for variant in host:.:1 xcframework:.:0 release:"$WORK/release":0 sample:ios/SampleApp:1; do
    IFS=: read -r name dir host <<<"$variant"
    if ! (cd "$dir" && SMOLVLM_HOST_LIBRARY=$host swift package dump-package) >"$WORK/$name.json" 2>"$WORK/$name.err"; then
        bad "swift package dump-package ($name): $(head -3 "$WORK/$name.err")"
        continue
    fi
    if why=$(python3 - "$name" "$WORK/$name.json" <<'PY'
import json, sys
name, m = sys.argv[1], json.load(open(sys.argv[2]))
text = json.dumps(m)
assert "unsafeFlags" not in text, "unsafe flags"
targets = {t["name"]: t for t in m["targets"]}
if name == "sample":
    assert "SampleState" in targets and targets["SampleStateTests"]["type"] == "test", sorted(targets)
    print("products", [p["name"] for p in m["products"]], "; depends on", [d["fileSystem"][0]["path"].rsplit("/", 2)[-2:] for d in m["dependencies"]])
    sys.exit(0)
assert [p["name"] for p in m["products"]] == ["SmolVLM"], m["products"]
ffic = targets["SmolVLMFFIC"]
want = {"host": "regular", "xcframework": "binary", "release": "binary"}[name]
assert ffic["type"] == want, (ffic["type"], want)
if name == "xcframework":
    assert ffic["path"] == "target/ios/SmolVLMFFIC.xcframework", ffic.get("path")
if name == "release":
    assert ffic["url"].endswith(".zip") and len(ffic["checksum"]) == 64, ffic
links = [s["kind"]["linkedFramework"]["_0"] for s in targets["SmolVLMFFI"]["settings"] if "linkedFramework" in s["kind"]]
print(f"SmolVLMFFIC {ffic['type']}" + (f" at {ffic.get('path') or ffic.get('url')}" if ffic["type"] == "binary" else "") + f"; frameworks {links}")
PY
    ); then
        ok "dump-package ($name): $why, no unsafe flags"
    else
        bad "dump-package ($name): $why"
    fi
done

echo "Swift surface: $passed passed, $failed failed"
[ "$failed" = 0 ]
