package org.finetune.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.finetune.data.ImageDecoder;
import org.finetune.data.ImageDecoder.UnreadableImageException;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fuzz target over image decoding: any bytes, written to a file, either decode to an RGB image no
 * larger than {@link ImageDecoder#MAX_PIXELS} with samples in 0..255, or fail with
 * {@link UnreadableImageException} and a one-line message (a dataset then skips the file, or
 * stops in strict mode). Any other exception, a hang or an out-of-memory error is a finding; the
 * pixel cap is what keeps a header that claims a huge image from allocating it.
 *
 * <p>Without {@code JAZZER_FUZZ} this runs once per seed in {@code ImageDecodingFuzzTestInputs/}.
 */
class ImageDecodingFuzzTest {
  @TempDir
  static Path work;

  @FuzzTest
  void decode(byte[] bytes) throws IOException {
    Path file = work.resolve("image");
    Files.write(file, bytes);
    ImageDecoder.Image image;
    try {
      image = ImageDecoder.decode(file);
    } catch (UnreadableImageException e) {
      Messages.assertOneLine(e.getMessage(), e);
      return;
    }
    long pixels = (long) image.width() * image.height();
    if (image.width() < 1 || image.height() < 1 || pixels > ImageDecoder.MAX_PIXELS) {
      throw new AssertionError("decoded a " + image.width() + "x" + image.height() + " image, outside 1.."
          + ImageDecoder.MAX_PIXELS + " pixels");
    }
    for (float v : image.rgb()) {
      if (!(v >= 0 && v <= 255) || v != Math.rint(v)) {
        throw new AssertionError("sample " + v + " is not an integer in 0..255");
      }
    }
  }
}
