// Compile-time stand-in (see tools/android-stubs/README.md): activity 1.10's enableEdgeToEdge
// (class EdgeToEdge, method enable). The defaults are the library's business: stubbed.
@file:JvmName("EdgeToEdge")

package androidx.activity

@JvmName("enable")
@JvmOverloads
fun ComponentActivity.enableEdgeToEdge(
    statusBarStyle: SystemBarStyle = throw UnsupportedOperationException("stub"),
    navigationBarStyle: SystemBarStyle = throw UnsupportedOperationException("stub"),
): Unit = throw UnsupportedOperationException("stub")
