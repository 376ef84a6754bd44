// Compile-time stand-in (see tools/android-stubs/README.md): the member of activity 1.10's
// ActivityResultLauncher that the sample uses.
package androidx.activity.result

abstract class ActivityResultLauncher<I> {
    open fun launch(input: I): Unit = throw UnsupportedOperationException("stub")
}
