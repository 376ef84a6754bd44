// Compile-time stand-in (see tools/android-stubs/README.md): activity 1.10's ActivityResultCallback.
package androidx.activity.result

fun interface ActivityResultCallback<O> {
    fun onActivityResult(result: O)
}
