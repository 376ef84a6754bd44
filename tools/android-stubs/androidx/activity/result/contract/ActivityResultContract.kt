// Compile-time stand-in (see tools/android-stubs/README.md): activity 1.10's ActivityResultContract,
// the type registerForActivityResult takes (its members are not used).
package androidx.activity.result.contract

abstract class ActivityResultContract<I, O>
