// Compile-time stand-in (see tools/android-stubs/README.md): the member of camera-core 1.4.1's
// ImageInfo that the SDK uses.
package androidx.camera.core;

public interface ImageInfo {
    int getRotationDegrees();
}
