// Compile-time stand-in (see tools/android-stubs/README.md): the member of core 1.16's
// ViewCompat that the sample uses.
package androidx.core.view;

import android.view.View;

public class ViewCompat {
    protected ViewCompat() {
    }

    public static void setOnApplyWindowInsetsListener(View v, OnApplyWindowInsetsListener listener) {
        throw new UnsupportedOperationException("stub");
    }
}
