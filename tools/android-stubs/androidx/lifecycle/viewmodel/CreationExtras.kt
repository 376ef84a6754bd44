// Compile-time stand-in (see tools/android-stubs/README.md): lifecycle 2.9's CreationExtras, a
// parameter type of viewModels() (not used otherwise).
package androidx.lifecycle.viewmodel

abstract class CreationExtras
