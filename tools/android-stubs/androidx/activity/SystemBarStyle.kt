// Compile-time stand-in (see tools/android-stubs/README.md): activity 1.10's SystemBarStyle, the
// type of enableEdgeToEdge's parameters (its factories are not used).
package androidx.activity

class SystemBarStyle private constructor()
