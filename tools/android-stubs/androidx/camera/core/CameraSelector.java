// Compile-time stand-in (see tools/android-stubs/README.md): the member of camera-core 1.5's
// CameraSelector that the sample uses.
package androidx.camera.core;

public final class CameraSelector {
    public static final CameraSelector DEFAULT_BACK_CAMERA = stub();

    private CameraSelector() {
    }

    private static CameraSelector stub() {
        throw new UnsupportedOperationException("stub");
    }
}
