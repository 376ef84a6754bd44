// Compile-time stand-in (see tools/android-stubs/README.md): activity 1.10's viewModels()
// delegate (ActivityViewModelLazyKt).
package androidx.activity

import androidx.lifecycle.ViewModel
import androidx.lifecycle.ViewModelProvider
import androidx.lifecycle.viewmodel.CreationExtras

inline fun <reified VM : ViewModel> ComponentActivity.viewModels(
    noinline extrasProducer: (() -> CreationExtras)? = null,
    noinline factoryProducer: (() -> ViewModelProvider.Factory)? = null,
): Lazy<VM> = throw UnsupportedOperationException("stub")
