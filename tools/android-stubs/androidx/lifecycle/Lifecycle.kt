// Compile-time stand-in (see tools/android-stubs/README.md): lifecycle 2.9's Lifecycle, for its
// State (the members are not used).
package androidx.lifecycle

abstract class Lifecycle {
    enum class State { DESTROYED, INITIALIZED, CREATED, STARTED, RESUMED }
}
