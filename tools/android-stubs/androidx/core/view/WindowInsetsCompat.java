// Compile-time stand-in (see tools/android-stubs/README.md): the members of core 1.16's
// WindowInsetsCompat that the sample uses.
package androidx.core.view;

import androidx.core.graphics.Insets;

public class WindowInsetsCompat {
    public static final WindowInsetsCompat CONSUMED = stub();

    private WindowInsetsCompat() {
    }

    public Insets getInsets(int typeMask) {
        throw new UnsupportedOperationException("stub");
    }

    private static WindowInsetsCompat stub() {
        throw new UnsupportedOperationException("stub");
    }

    public static final class Type {
        private Type() {
        }

        public static int systemBars() {
            throw new UnsupportedOperationException("stub");
        }

        public static int ime() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
