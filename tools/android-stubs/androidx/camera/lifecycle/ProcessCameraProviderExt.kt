// Compile-time stand-in (see tools/android-stubs/README.md): camera-lifecycle 1.5's suspending
// ProcessCameraProvider.awaitInstance (ProcessCameraProviderExtKt).
package androidx.camera.lifecycle

import android.content.Context

suspend fun ProcessCameraProvider.Companion.awaitInstance(context: Context): ProcessCameraProvider =
    throw UnsupportedOperationException("stub")
