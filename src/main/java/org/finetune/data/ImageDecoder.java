package org.finetune.data;

import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import org.apache.commons.imaging.Imaging;

/**
 * Decodes image files to RGB the way TensorFlow's {@code tf.io.decode_image(channels=3,
 * expand_animations=False)} does, which is what Keras's {@code image_dataset_from_directory}
 * uses: grey is replicated to three channels, alpha is dropped (not composited), 16-bit samples
 * keep their high byte, a GIF gives its first frame, EXIF orientation is ignored. Samples of other
 * widths, which TensorFlow does not decode (a TIFF's, a 16-bit BMP's), are brought to 0..255 band
 * by band the same way: wider ones keep their high byte, narrower ones are scaled up.
 *
 * <p>The format comes from the file's first bytes, not its name. Every format goes through
 * ImageIO, read at the raster (the samples as stored): Commons Imaging 1.0.0-alpha6 decodes
 * JPEGs with restart markers into garbage without an error, refuses progressive ones, and hands
 * grey PNGs back converted through a linear-grey colour space (a stored 30 reads as 3 in its
 * raster and 28 through {@code getRGB}). Commons Imaging is only the fallback for a file ImageIO
 * has no reader for. A reader's warning (a JPEG that ends early) is an error, not a grey tail.
 */
public final class ImageDecoder {
  /**
   * The most pixels an image may have (64 megapixels, e.g. 9504x6336). Its header is read before
   * its samples, so a file that claims more is refused before anything that size is allocated;
   * decoding takes about 20 bytes per pixel.
   */
  public static final long MAX_PIXELS = 1L << 26;

  private ImageDecoder() {}

  /** A decoded image: {@code height x width x 3} samples, 0..255, row-major, RGB. */
  public record Image(int width, int height, float[] rgb) {
    public Image {
      if (rgb.length != width * height * 3) {
        throw new IllegalArgumentException("expected " + width * height * 3 + " samples, got " + rgb.length);
      }
    }
  }

  /** A file that is not an image we can decode (empty, truncated, another format, damaged). */
  public static final class UnreadableImageException extends IOException {
    public UnreadableImageException(Path file, String why, Throwable cause) {
      super(file + ": " + why, cause);
    }
  }

  /** The image formats we decode, by their signature. */
  enum Format { JPEG, PNG, GIF, BMP, TIFF }

  public static Image decode(Path file) throws IOException {
    byte[] bytes = Files.readAllBytes(file);
    Format format = sniff(bytes);
    if (format == null) {
      throw new UnreadableImageException(file, bytes.length == 0 ? "empty file"
          : "not a JPEG, PNG, GIF, BMP or TIFF image (by its first bytes)", null);
    }
    BufferedImage image;
    try {
      image = readWithImageIo(file, bytes, format);
      if (image == null) {
        java.awt.Dimension size = Imaging.getImageSize(bytes);
        checkSize(file, format, size.width, size.height, bytes.length);
        image = Imaging.getBufferedImage(bytes);
      }
    } catch (UnreadableImageException e) {
      throw e;
    } catch (IOException | RuntimeException e) {
      throw new UnreadableImageException(file, "cannot decode this " + format + " (" + e.getMessage() + ")", e);
    }
    if (image == null) {
      throw new UnreadableImageException(file, "cannot decode this " + format, null);
    }
    try {
      return toRgb(file, image);
    } catch (RuntimeException e) {
      // A raster that does not fit its colour model; the reader accepted a file it should not have.
      throw new UnreadableImageException(file, "cannot decode this " + format + " (" + e + ")", e);
    }
  }

  static Format sniff(byte[] b) {
    if (b.length >= 3 && (b[0] & 0xff) == 0xff && (b[1] & 0xff) == 0xd8 && (b[2] & 0xff) == 0xff) {
      return Format.JPEG;
    }
    if (b.length >= 8 && (b[0] & 0xff) == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G') {
      return Format.PNG;
    }
    if (b.length >= 6 && b[0] == 'G' && b[1] == 'I' && b[2] == 'F' && b[3] == '8') {
      return Format.GIF;
    }
    if (b.length >= 14 && b[0] == 'B' && b[1] == 'M') {
      return Format.BMP;
    }
    if (b.length >= 8 && ((b[0] == 'I' && b[1] == 'I' && b[2] == 42 && b[3] == 0)
        || (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && b[3] == 42))) {
      return Format.TIFF;
    }
    return null;
  }

  /**
   * The first image through ImageIO, with reader warnings (a premature end of data) turned into
   * errors; null when ImageIO has no reader for it.
   */
  private static BufferedImage readWithImageIo(Path file, byte[] bytes, Format format) throws IOException {
    try (ImageInputStream in = ImageIO.createImageInputStream(new ByteArrayInputStream(bytes))) {
      Iterator<ImageReader> readers = ImageIO.getImageReaders(in);
      if (!readers.hasNext()) {
        return null;
      }
      ImageReader reader = readers.next();
      List<String> warnings = new ArrayList<>();
      try {
        reader.setInput(in, true, true);
        reader.addIIOReadWarningListener((source, warning) -> warnings.add(warning));
        checkSize(file, format, reader.getWidth(0), reader.getHeight(0), bytes.length);
        if (format == Format.TIFF) {
          checkTiffSamples(file, reader);
        } else if (format == Format.BMP) {
          checkBmpData(file, bytes);
        }
        BufferedImage image = reader.read(0);
        if (!warnings.isEmpty()) {
          throw new UnreadableImageException(file, "damaged " + format + " (" + String.join("; ", warnings) + ")", null);
        }
        return image;
      } finally {
        reader.dispose();
      }
    }
  }

  /**
   * The most pixels a file may hold per byte. No format we read compresses further (deflate stops
   * near 1032:1, i.e. 8256 one-bit pixels per byte), so a header that claims more belongs to a
   * truncated or damaged file, and decoding it would only allocate for samples that are not there.
   */
  private static final long MAX_PIXELS_PER_BYTE = 16384;

  /**
   * Refuses a header whose size is empty, beyond {@link #MAX_PIXELS} or beyond what {@code fileBytes}
   * can hold, before the samples are read.
   */
  private static void checkSize(Path file, Format format, int width, int height, long fileBytes)
      throws UnreadableImageException {
    if (width < 1 || height < 1) {
      throw new UnreadableImageException(file, "its " + format + " header gives a size of " + width + "x" + height
          + " pixels; the file is damaged", null);
    }
    if ((long) width * height > MAX_PIXELS) {
      throw new UnreadableImageException(file, "its " + format + " header gives " + width + "x" + height
          + " pixels, more than the " + MAX_PIXELS / (1 << 20) + " megapixels finetune decodes; scale it down"
          + " (the model sees it resized anyway) or leave it out", null);
    }
    if ((long) width * height > MAX_PIXELS_PER_BYTE * fileBytes) {
      throw new UnreadableImageException(file, "its " + format + " header gives " + width + "x" + height
          + " pixels, more than " + fileBytes + " bytes can hold; the file is truncated or damaged", null);
    }
  }

  /**
   * Refuses a TIFF whose pixels are not 1 to 4 samples of 1 to 16 bits, from its header: ImageIO's
   * TIFF reader sizes a lookup table per sample by its bit width (2^27 entries for a 27-bit
   * sample), so a damaged header could make it allocate gigabytes for a small image.
   */
  private static void checkTiffSamples(Path file, ImageReader reader) throws IOException {
    javax.imageio.plugins.tiff.TIFFDirectory dir =
        javax.imageio.plugins.tiff.TIFFDirectory.createFromMetadata(reader.getImageMetadata(0));
    javax.imageio.plugins.tiff.TIFFField samples =
        dir.getTIFFField(javax.imageio.plugins.tiff.BaselineTIFFTagSet.TAG_SAMPLES_PER_PIXEL);
    javax.imageio.plugins.tiff.TIFFField bits =
        dir.getTIFFField(javax.imageio.plugins.tiff.BaselineTIFFTagSet.TAG_BITS_PER_SAMPLE);
    int perPixel = samples == null || samples.getCount() == 0 ? 1 : samples.getAsInt(0);
    if (perPixel < 1 || perPixel > 4) {
      throw new UnreadableImageException(file, "its TIFF header gives " + perPixel + " samples per pixel;"
          + " finetune reads grey, RGB and either with alpha (1 to 4)", null);
    }
    for (int i = 0; bits != null && i < bits.getCount(); i++) {
      int width = bits.getAsInt(i);
      if (width < 1 || width > 16) {
        throw new UnreadableImageException(file, "its TIFF header gives samples of " + width + " bits;"
            + " finetune reads 1 to 16 bits per sample", null);
      }
    }
  }

  /**
   * Refuses a BMP whose header asks for a JPEG or PNG inside it (which TensorFlow does not decode
   * either, and whose own header would go unchecked) or gives more bytes of run-length data than
   * the file has: ImageIO allocates that many bytes before it reads them.
   */
  private static void checkBmpData(Path file, byte[] bytes) throws UnreadableImageException {
    ByteBuffer header = ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    if (bytes.length < 38 || header.getInt(14) < 40) {
      return; // an OS/2 header: no compression, no size field
    }
    int compression = header.getInt(30);
    long dataBytes = Integer.toUnsignedLong(header.getInt(34));
    if (compression == 4 || compression == 5) {
      throw new UnreadableImageException(file, "a BMP holding a " + (compression == 4 ? "JPEG" : "PNG")
          + " is not supported; save the image as a plain JPEG or PNG", null);
    }
    // Only run-length data is allocated by this size; uncompressed writers are often careless with it.
    if ((compression == 1 || compression == 2) && dataBytes > bytes.length) {
      throw new UnreadableImageException(file, "its BMP header gives " + dataBytes + " bytes of pixel data, but"
          + " the file has " + bytes.length + "; it is truncated or damaged", null);
    }
  }

  private static Image toRgb(Path file, BufferedImage image) throws UnreadableImageException {
    int w = image.getWidth();
    int h = image.getHeight();
    float[] rgb = new float[w * h * 3];
    Raster raster = image.getRaster();
    ColorModel cm = image.getColorModel();
    if (cm instanceof IndexColorModel icm) {
      for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
          int index = raster.getSample(x, y, 0);
          int o = (y * w + x) * 3;
          rgb[o] = icm.getRed(index);
          rgb[o + 1] = icm.getGreen(index);
          rgb[o + 2] = icm.getBlue(index);
        }
      }
      return new Image(w, h, rgb);
    }
    int colors = cm.getNumColorComponents();
    if (colors != 1 && colors != 3) {
      throw new UnreadableImageException(file, colors + "-component colour (" + cm.getColorSpace().getType()
          + ") is not RGB or grey", null);
    }
    int type = raster.getDataBuffer().getDataType();
    if (type == java.awt.image.DataBuffer.TYPE_FLOAT || type == java.awt.image.DataBuffer.TYPE_DOUBLE) {
      throw new UnreadableImageException(file, "floating-point samples are not supported; save it with 8- or"
          + " 16-bit integer samples", null);
    }
    // Bands may differ in width (a TIFF may say 8, 8 and 25 bits), so each is brought to 0..255 on its own.
    int[] bits = new int[colors];
    for (int c = 0; c < colors; c++) {
      bits[c] = raster.getSampleModel().getSampleSize(c);
    }
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        int o = (y * w + x) * 3;
        if (colors == 1) {
          float v = to8Bits(raster.getSample(x, y, 0), bits[0]);
          rgb[o] = v;
          rgb[o + 1] = v;
          rgb[o + 2] = v;
        } else {
          for (int c = 0; c < 3; c++) {
            rgb[o + c] = to8Bits(raster.getSample(x, y, c), bits[c]);
          }
        }
      }
    }
    return new Image(w, h, rgb);
  }

  /**
   * A stored sample of {@code bits} bits as 0..255: a wider one keeps its high byte (TensorFlow's
   * rule for 16-bit PNGs), a narrower one is scaled to the full range, a band of no bits is 0.
   */
  private static float to8Bits(int sample, int bits) {
    if (bits >= 8) {
      return (sample >>> (bits - 8)) & 0xff;
    }
    if (bits <= 0) {
      return 0;
    }
    int max = (1 << bits) - 1;
    return Math.round((sample & max) * 255f / max);
  }
}
