import Foundation
import XCTest
@testable import SmolVLM

/// An RGB image in plain Swift, to build stored pixels from an upright picture.
private struct Pixels: Equatable {
    var w: Int, h: Int, rgb: [UInt8]

    func at(_ x: Int, _ y: Int) -> ArraySlice<UInt8> { rgb[(y * w + x) * 3..<(y * w + x) * 3 + 3] }

    /// Left to right.
    func mirrored() -> Pixels {
        var out = self
        for y in 0..<h { for x in 0..<w { out.rgb.replaceSubrange((y * w + x) * 3..<(y * w + x) * 3 + 3, with: at(w - 1 - x, y)) } }
        return out
    }

    /// 90° counter-clockwise.
    func rotatedCcw() -> Pixels {
        var out = Pixels(w: h, h: w, rgb: rgb)
        for y in 0..<h { for x in 0..<w {
            let (nx, ny) = (y, w - 1 - x)
            out.rgb.replaceSubrange((ny * h + nx) * 3..<(ny * h + nx) * 3 + 3, with: at(x, y))
        } }
        return out
    }

    func rotatedCcw(_ degrees: Int) -> Pixels {
        (0..<(degrees / 90)).reduce(self) { p, _ in p.rotatedCcw() }
    }
}

/// ``ImageOrientation`` and the orientation helpers: pure arithmetic plus the library's rotation
/// and mirror, so they run here although their Apple callers (CGImage, UIImage, CVPixelBuffer)
/// cannot.
final class OrientationTests: XCTestCase {
    func testEXIFNumbersAndTheirParts() {
        let parts: [(ImageOrientation, UInt32, Bool, Int)] = [
            (.up, 1, false, 0), (.upMirrored, 2, true, 0), (.down, 3, false, 180), (.downMirrored, 4, true, 180),
            (.leftMirrored, 5, true, 270), (.right, 6, false, 90), (.rightMirrored, 7, true, 90), (.left, 8, false, 270),
        ]
        XCTAssertEqual(parts.count, ImageOrientation.allCases.count)
        for (o, exif, mirrored, degrees) in parts {
            XCTAssertEqual(o.rawValue, exif)
            XCTAssertEqual(o.isMirrored, mirrored, "\(o)")
            XCTAssertEqual(o.clockwiseDegrees, degrees, "\(o)")
            XCTAssertEqual(ImageOrientation(clockwiseDegrees: degrees, mirrored: mirrored), o)
            XCTAssertEqual(ImageOrientation(clockwiseDegrees: degrees - 360, mirrored: mirrored), o, "negative angles")
        }
        XCTAssertEqual(ImageOrientation.camera(rotationAngle: 90, mirrored: false), .right, "back camera, portrait")
        XCTAssertEqual(ImageOrientation.camera(rotationAngle: 89.6, mirrored: false), .right, "rounded")
        XCTAssertEqual(ImageOrientation.camera(rotationAngle: 0, mirrored: false), .up)
        XCTAssertEqual(ImageOrientation.camera(rotationAngle: 270, mirrored: true), .leftMirrored)
    }

    /// For every orientation: stored pixels made from an upright picture by undoing it come back
    /// upright, through the library's conversion (eager and deferred).
    func testEveryOrientationComesOutUpright() throws {
        let png = try ImageInput.file(SmolVLMTests.image("small.png"))
        let upright = Pixels(w: png.width, h: png.height, rgb: [UInt8](png.rgbBytes))
        XCTAssertNotEqual(upright, upright.mirrored(), "the picture is not symmetric")
        for o in ImageOrientation.allCases {
            // upright = rotate(mirror?(stored)) ⇒ stored = mirror?(rotate⁻¹(upright)).
            let turned = upright.rotatedCcw(o.clockwiseDegrees)
            let stored = o.isMirrored ? turned.mirrored() : turned
            for deferred in [false, true] {
                let image = try ImageInput.oriented(o) { degrees in
                    deferred
                        ? try .frame(Data(stored.rgb), format: .rgb888, width: stored.w, height: stored.h, rotationDegrees: degrees)
                        : try .pixels(Data(stored.rgb), format: .rgb888, width: stored.w, height: stored.h, rotationDegrees: degrees)
                }
                XCTAssertEqual(image.isDeferred, deferred)
                XCTAssertEqual(Pixels(w: image.width, h: image.height, rgb: [UInt8](image.rgbBytes)), upright, "\(o), deferred: \(deferred)")
            }
        }
    }

    /// A mirrored front-camera buffer (mirrored about its own vertical axis, not rotated) comes
    /// out as the scene, for every rotation angle the coordinator can give.
    func testMirroredCameraBuffersShowTheScene() throws {
        let png = try ImageInput.file(SmolVLMTests.image("small.png"))
        let scene = Pixels(w: png.width, h: png.height, rgb: [UInt8](png.rgbBytes))
        for angle in [0, 90, 180, 270] {
            let buffer = scene.rotatedCcw(angle).mirrored()
            let o = ImageOrientation.camera(rotationAngle: Double(angle), mirrored: true)
            let image = try ImageInput.oriented(o) { degrees in
                try .frame(Data(buffer.rgb), format: .rgb888, width: buffer.w, height: buffer.h, rotationDegrees: degrees)
            }
            XCTAssertEqual(Pixels(w: image.width, h: image.height, rgb: [UInt8](image.rgbBytes)), scene, "angle \(angle)")
        }
        XCTAssertEqual(png.mirrored().mirrored().rgbBytes, png.rgbBytes, "mirroring twice is the original")
    }
}
