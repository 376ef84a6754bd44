// Compile-time stand-in (see tools/android-stubs/README.md): camera-core 1.5's UseCase, the
// common type of Preview and ImageAnalysis (its members are not used).
package androidx.camera.core;

public abstract class UseCase {
    UseCase() {
        throw new UnsupportedOperationException("stub");
    }
}
