// Compile-time stand-in (see tools/android-stubs/README.md): lifecycle 2.9's
// ViewModelProvider.Factory, a parameter type of viewModels() (not used otherwise).
package androidx.lifecycle

open class ViewModelProvider private constructor() {
    interface Factory
}
