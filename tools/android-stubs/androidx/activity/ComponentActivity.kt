// Compile-time stand-in (see tools/android-stubs/README.md): the members of activity 1.10's
// ComponentActivity (a Kotlin class) that the sample uses. The published class extends
// androidx.core.app.ComponentActivity and implements a dozen owner interfaces; only
// LifecycleOwner is needed here.
package androidx.activity

import androidx.activity.result.ActivityResultCallback
import androidx.activity.result.ActivityResultLauncher
import androidx.activity.result.contract.ActivityResultContract
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.LifecycleOwner

open class ComponentActivity : android.app.Activity(), LifecycleOwner {
    override val lifecycle: Lifecycle get() = throw UnsupportedOperationException("stub")

    fun <I, O> registerForActivityResult(
        contract: ActivityResultContract<I, O>,
        callback: ActivityResultCallback<O>,
    ): ActivityResultLauncher<I> = throw UnsupportedOperationException("stub")
}
