// Stand-in for Apple's ImageIO (see README.md): only what the SDK's helpers use.
public enum CGImagePropertyOrientation: UInt32 {
    case up = 1, upMirrored, down, downMirrored, leftMirrored, right, rightMirrored, left
}
