// Compile-time stand-in (see tools/android-stubs/README.md): the fields of core 1.16's Insets
// that the sample reads.
package androidx.core.graphics;

public final class Insets {
    public final int left;
    public final int top;
    public final int right;
    public final int bottom;

    private Insets(int left, int top, int right, int bottom) {
        this.left = left;
        this.top = top;
        this.right = right;
        this.bottom = bottom;
        throw new UnsupportedOperationException("stub");
    }
}
