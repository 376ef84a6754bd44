// Compile-time stand-in (see tools/android-stubs/README.md): lifecycle 2.9's repeatOnLifecycle
// (RepeatOnLifecycleKt).
package androidx.lifecycle

import kotlinx.coroutines.CoroutineScope

suspend fun LifecycleOwner.repeatOnLifecycle(state: Lifecycle.State, block: suspend CoroutineScope.() -> Unit): Unit =
    throw UnsupportedOperationException("stub")
