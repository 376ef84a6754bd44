// Compile-time stand-in (see tools/android-stubs/README.md): the contract of activity 1.10's
// ActivityResultContracts that the sample uses.
package androidx.activity.result.contract

class ActivityResultContracts private constructor() {
    class RequestPermission : ActivityResultContract<String, Boolean>() {
        init {
            throw UnsupportedOperationException("stub")
        }
    }
}
