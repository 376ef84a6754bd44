// Compile-time stand-in (see tools/android-stubs/README.md): the member of core 1.16's
// ContextCompat that the sample uses.
package androidx.core.content;

import android.content.Context;

public class ContextCompat {
    protected ContextCompat() {
    }

    public static int checkSelfPermission(Context context, String permission) {
        throw new UnsupportedOperationException("stub");
    }
}
