// Compile-time stand-in (see tools/android-stubs/README.md): camera-core 1.5's Camera, what
// ProcessCameraProvider.bindToLifecycle returns (its members are not used).
package androidx.camera.core;

public interface Camera {
}
