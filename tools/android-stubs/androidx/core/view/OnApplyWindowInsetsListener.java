// Compile-time stand-in (see tools/android-stubs/README.md): core 1.16's OnApplyWindowInsetsListener.
package androidx.core.view;

import android.view.View;

public interface OnApplyWindowInsetsListener {
    WindowInsetsCompat onApplyWindowInsets(View v, WindowInsetsCompat insets);
}
