// Compile-time stand-in (see tools/android-stubs/README.md): the members of camera-core 1.5's
// Preview use case that the sample uses.
package androidx.camera.core;

public final class Preview extends UseCase {
    private Preview() {
    }

    public void setSurfaceProvider(Preview.SurfaceProvider surfaceProvider) {
        throw new UnsupportedOperationException("stub");
    }

    /** What PreviewView hands out; the sample only passes it on. */
    public interface SurfaceProvider {
    }

    public static final class Builder {
        public Builder() {
            throw new UnsupportedOperationException("stub");
        }

        public Preview build() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
