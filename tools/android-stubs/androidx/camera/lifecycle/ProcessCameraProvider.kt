// Compile-time stand-in (see tools/android-stubs/README.md): the members of camera-lifecycle
// 1.5's ProcessCameraProvider (a Kotlin class since 1.4) that the sample uses.
package androidx.camera.lifecycle

import androidx.camera.core.Camera
import androidx.camera.core.CameraSelector
import androidx.camera.core.UseCase
import androidx.lifecycle.LifecycleOwner

class ProcessCameraProvider private constructor() {
    fun bindToLifecycle(lifecycleOwner: LifecycleOwner, cameraSelector: CameraSelector, vararg useCases: UseCase?): Camera =
        throw UnsupportedOperationException("stub")

    fun unbindAll(): Unit = throw UnsupportedOperationException("stub")

    companion object
}
