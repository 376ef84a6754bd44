// Compile-time stand-in (see tools/android-stubs/README.md, "Platform classes newer than API
// 23"): the members of the Android platform's MediaMetadataRetriever that the SDK's video
// helper (android/sdk/src/android/kotlin/dev/smolvlm/android/AndroidVideos.kt) uses, in the
// shape of the API 28 android.jar. tools/test_bindings.sh compiles it into a jar placed before
// android.jar (API 23) on the type-check's classpath, and checks that every member not listed
// on the next line is declared exactly so (javap) in that android.jar.
// Newer than API 23: METADATA_KEY_VIDEO_FRAME_COUNT getFrameAtIndex
package android.media;

import android.content.Context;
import android.graphics.Bitmap;
import android.net.Uri;

public class MediaMetadataRetriever {
    public static final int METADATA_KEY_CAPTURE_FRAMERATE = 25;
    public static final int METADATA_KEY_DURATION = 9;
    /** Added in API level 28. */
    public static final int METADATA_KEY_VIDEO_FRAME_COUNT = 32;
    public static final int OPTION_CLOSEST = 3;

    public MediaMetadataRetriever() {
        throw new UnsupportedOperationException("stub");
    }

    public void setDataSource(String path) throws IllegalArgumentException {
        throw new UnsupportedOperationException("stub");
    }

    public void setDataSource(Context context, Uri uri) throws IllegalArgumentException, SecurityException {
        throw new UnsupportedOperationException("stub");
    }

    public native String extractMetadata(int keyCode);

    public Bitmap getFrameAtTime(long timeUs, int option) {
        throw new UnsupportedOperationException("stub");
    }

    /** Added in API level 28. */
    public Bitmap getFrameAtIndex(int frameIndex) {
        throw new UnsupportedOperationException("stub");
    }

    public native void release();
}
