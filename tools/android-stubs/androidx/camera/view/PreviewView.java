// Compile-time stand-in (see tools/android-stubs/README.md): the members of camera-view 1.5's
// PreviewView that the sample uses (the layout inflates it; the code reads its surface provider).
package androidx.camera.view;

import android.content.Context;
import android.util.AttributeSet;
import android.widget.FrameLayout;
import androidx.camera.core.Preview;

public final class PreviewView extends FrameLayout {
    public PreviewView(Context context, AttributeSet attrs) {
        super(context, attrs);
        throw new UnsupportedOperationException("stub");
    }

    public Preview.SurfaceProvider getSurfaceProvider() {
        throw new UnsupportedOperationException("stub");
    }
}
