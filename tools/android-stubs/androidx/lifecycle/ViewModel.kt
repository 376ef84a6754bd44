// Compile-time stand-in (see tools/android-stubs/README.md): the members of lifecycle 2.9's
// ViewModel and AndroidViewModel that the sample uses, and viewModelScope (ViewModelKt).
package androidx.lifecycle

import android.app.Application
import kotlinx.coroutines.CoroutineScope

abstract class ViewModel {
    protected open fun onCleared(): Unit = throw UnsupportedOperationException("stub")
}

open class AndroidViewModel(application: Application) : ViewModel()

val ViewModel.viewModelScope: CoroutineScope
    get() = throw UnsupportedOperationException("stub")
