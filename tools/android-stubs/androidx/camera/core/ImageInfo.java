// Compile-time stand-in (see tools/android-stubs/README.md): the members of camera-core 1.5's
// ImageInfo that the SDK and the sample use.
package androidx.camera.core;

public interface ImageInfo {
    int getRotationDegrees();

    long getTimestamp();
}
