// Compile-time stand-in (see tools/android-stubs/README.md): the members of camera-core 1.5's
// ImageAnalysis use case that the sample uses (the constants with their published values).
package androidx.camera.core;

import java.util.concurrent.Executor;

public final class ImageAnalysis extends UseCase {
    public static final int STRATEGY_KEEP_ONLY_LATEST = 0;
    public static final int OUTPUT_IMAGE_FORMAT_YUV_420_888 = 1;

    private ImageAnalysis() {
    }

    public void setAnalyzer(Executor executor, ImageAnalysis.Analyzer analyzer) {
        throw new UnsupportedOperationException("stub");
    }

    public interface Analyzer {
        void analyze(ImageProxy image);
    }

    public static final class Builder {
        public Builder() {
            throw new UnsupportedOperationException("stub");
        }

        public ImageAnalysis.Builder setBackpressureStrategy(int strategy) {
            throw new UnsupportedOperationException("stub");
        }

        public ImageAnalysis.Builder setOutputImageFormat(int outputImageFormat) {
            throw new UnsupportedOperationException("stub");
        }

        public ImageAnalysis build() {
            throw new UnsupportedOperationException("stub");
        }
    }
}
