// Compile-time stand-in (see tools/android-stubs/README.md): lifecycle 2.9's LifecycleOwner.
package androidx.lifecycle

interface LifecycleOwner {
    val lifecycle: Lifecycle
}
