// Compile-time stand-in (see tools/android-stubs/README.md): lifecycle 2.9's lifecycleScope and
// its type.
@file:JvmName("LifecycleOwnerKt")

package androidx.lifecycle

import kotlinx.coroutines.CoroutineScope

abstract class LifecycleCoroutineScope internal constructor() : CoroutineScope

val LifecycleOwner.lifecycleScope: LifecycleCoroutineScope
    get() = throw UnsupportedOperationException("stub")
