package org.finetune.data;

import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;
import java.util.zip.CRC32;
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
 *
 * <p>Before any pixel is decoded, the header's size is checked against {@link #MAX_PIXELS}, so a
 * file that claims 50000x50000 is refused without allocating for it; a PNG's chunk CRCs are
 * checked first too (libpng, and so TensorFlow, refuses a PNG whose CRC does not match). A CMYK
 * JPEG (four components, which ImageIO's {@code read} refuses) is read at the raster and converted
 * as TensorFlow converts it: with Adobe's APP14 marker (inverted samples, as Photoshop writes
 * them) {@code r = c * k / 255}, without it {@code r = (255 - c) * (255 - k) / 255}, in integers; an
 * Adobe YCCK JPEG (transform 2) is first turned into CMYK with libjpeg's fixed-point YCbCr
 * tables, as libjpeg-turbo does inside TensorFlow.
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

  /** A decoded grey image: {@code height x width} samples, 0..255, row-major. */
  public record GreyImage(int width, int height, float[] grey) {
    public GreyImage {
      if (grey.length != width * height) {
        throw new IllegalArgumentException("expected " + width * height + " samples, got " + grey.length);
      }
    }
  }

  /**
   * {@code file} with one grey sample per pixel, as TensorFlow decodes it with {@code channels=1}
   * (Keras's {@code color_mode="grayscale"}): a YCbCr JPEG gives its luma plane, read at the raster
   * before any colour conversion, as libjpeg gives it; any other image the grey of its RGB
   * ({@link ImageOps#grey}).
   */
  public static GreyImage decodeGrey(Path file) throws IOException {
    byte[] bytes = Files.readAllBytes(file);
    if (sniff(bytes) == Format.JPEG) {
      Jpeg jpeg = Jpeg.scan(bytes);
      boolean ycc = jpeg.components() == 3 && jpeg.adobeTransform().orElse(1) == 1;
      if (ycc) {
        Raster raster = jpegRaster(file, bytes);
        if (raster.getNumBands() != 3) {
          throw new UnreadableImageException(file, "a three-component JPEG that decodes to " + raster.getNumBands()
              + " bands", null);
        }
        int w = raster.getWidth();
        int h = raster.getHeight();
        return new GreyImage(w, h, raster.getSamples(raster.getMinX(), raster.getMinY(), w, h, 0, new float[w * h]));
      }
    }
    Image rgb = decode(file, bytes);
    return new GreyImage(rgb.width(), rgb.height(), ImageOps.grey(rgb.rgb()));
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
    return decode(file, Files.readAllBytes(file));
  }

  private static Image decode(Path file, byte[] bytes) throws IOException {
    Format format = sniff(bytes);
    if (format == null) {
      throw new UnreadableImageException(file, bytes.length == 0 ? "empty file"
          : "not a JPEG, PNG, GIF, BMP or TIFF image (by its first bytes)", null);
    }
    if (format == Format.PNG) {
      checkPngChunks(file, bytes);
    }
    BufferedImage image;
    try {
      if (format == Format.JPEG) {
        Jpeg jpeg = Jpeg.scan(bytes);
        if (jpeg.components() == 4) {
          return cmykToRgb(file, bytes, jpeg);
        }
      }
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
   * Walks a PNG's chunks up to IEND, checking the CRC-32 (over type and data) of each critical
   * chunk as libpng does (it only warns about an ancillary chunk's); a file that ends inside a
   * chunk is truncated. A file that ends between chunks is left to the decoder.
   */
  static void checkPngChunks(Path file, byte[] b) throws UnreadableImageException {
    ByteBuffer in = ByteBuffer.wrap(b);
    int pos = 8;
    while (pos < b.length) {
      if (pos + 8 > b.length) {
        throw new UnreadableImageException(file, "truncated PNG (it ends at byte " + b.length + " without IEND)", null);
      }
      long length = in.getInt(pos) & 0xffffffffL;
      String type = new String(b, pos + 4, 4, StandardCharsets.ISO_8859_1);
      if (pos + 12 + length > b.length) {
        throw new UnreadableImageException(file, "truncated PNG (its " + type + " chunk at byte " + pos
            + " ends after the file's " + b.length + " bytes)", null);
      }
      CRC32 crc = new CRC32();
      crc.update(b, pos + 4, (int) length + 4);
      long stored = in.getInt(pos + 8 + (int) length) & 0xffffffffL;
      boolean critical = Character.isUpperCase(type.charAt(0));
      if (critical && crc.getValue() != stored) {
        throw new UnreadableImageException(file, "damaged PNG (the CRC of its " + type + " chunk at byte " + pos
            + " does not match)", null);
      }
      if (type.equals("IEND")) {
        return;
      }
      pos += 12 + (int) length;
    }
  }

  /** What a JPEG's markers say before its scan: component count and Adobe's APP14 transform, if any. */
  record Jpeg(int components, OptionalInt adobeTransform) {
    static Jpeg scan(byte[] b) {
      int components = 0;
      OptionalInt transform = OptionalInt.empty();
      int pos = 2;
      while (pos + 4 <= b.length) {
        if ((b[pos] & 0xff) != 0xff) {
          break;
        }
        int marker = b[pos + 1] & 0xff;
        if (marker == 0xff) {
          pos++;
          continue;
        }
        if (marker == 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker == 0x01) {
          pos += 2;
          continue;
        }
        int length = ((b[pos + 2] & 0xff) << 8) | (b[pos + 3] & 0xff);
        int payload = pos + 4;
        boolean sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
        if (sof && payload + 5 < b.length) {
          components = b[payload + 5] & 0xff;
        } else if (marker == 0xee && length >= 14 && payload + 12 <= b.length
            && new String(b, payload, 5, StandardCharsets.ISO_8859_1).equals("Adobe")) {
          transform = OptionalInt.of(b[payload + 11] & 0xff);
        }
        if (marker == 0xda || marker == 0xd9) {
          break;
        }
        pos += 2 + length;
      }
      return new Jpeg(components, transform);
    }
  }

  /** A JPEG's decoded samples at the raster, before any colour conversion. */
  private static Raster jpegRaster(Path file, byte[] bytes) throws IOException {
    Raster raster;
    try (ImageInputStream in = ImageIO.createImageInputStream(new ByteArrayInputStream(bytes))) {
      ImageReader reader = ImageIO.getImageReadersByFormatName("jpeg").next();
      List<String> warnings = new ArrayList<>();
      try {
        reader.setInput(in, true, true);
        reader.addIIOReadWarningListener((source, warning) -> warnings.add(warning));
        checkSize(file, Format.JPEG, reader.getWidth(0), reader.getHeight(0), bytes.length);
        raster = reader.readRaster(0, null);
      } catch (RuntimeException e) {
        throw new UnreadableImageException(file, "cannot decode this JPEG (" + e.getMessage() + ")", e);
      } finally {
        reader.dispose();
      }
      if (!warnings.isEmpty()) {
        throw new UnreadableImageException(file, "damaged JPEG (" + String.join("; ", warnings) + ")", null);
      }
    }
    return raster;
  }

  /** A four-component JPEG read at the raster and converted to RGB as TensorFlow does (see the class doc). */
  private static Image cmykToRgb(Path file, byte[] bytes, Jpeg jpeg) throws IOException {
    Raster raster = jpegRaster(file, bytes);
    if (raster.getNumBands() != 4) {
      throw new UnreadableImageException(file, "a four-component JPEG that decodes to " + raster.getNumBands()
          + " bands", null);
    }
    boolean adobe = jpeg.adobeTransform().isPresent();
    boolean ycck = adobe && jpeg.adobeTransform().getAsInt() == 2;
    int w = raster.getWidth();
    int h = raster.getHeight();
    float[] rgb = new float[w * h * 3];
    int[] cmyk = new int[4];
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        raster.getPixel(raster.getMinX() + x, raster.getMinY() + y, cmyk);
        if (ycck) {
          yccToCmy(cmyk);
        }
        int k = adobe ? cmyk[3] : 255 - cmyk[3];
        int o = (y * w + x) * 3;
        for (int c = 0; c < 3; c++) {
          rgb[o + c] = (adobe ? cmyk[c] : 255 - cmyk[c]) * k / 255;
        }
      }
    }
    return new Image(w, h, rgb);
  }

  private static final int SCALE_BITS = 16;
  private static final int ONE_HALF = 1 << (SCALE_BITS - 1);

  /** libjpeg's FIX(x): x in 16-bit fixed point, rounded. */
  private static int fix(double x) {
    return (int) (x * (1 << SCALE_BITS) + 0.5);
  }

  /**
   * Y, Cb, Cr (the first three samples) to C, M, Y in place, exactly as libjpeg's
   * {@code ycck_cmyk_convert}: R, G, B from its fixed-point tables, clamped, then 255 minus each.
   */
  private static void yccToCmy(int[] p) {
    int luma = p[0];
    int cb = p[1] - 128;
    int cr = p[2] - 128;
    int r = luma + ((fix(1.40200) * cr + ONE_HALF) >> SCALE_BITS);
    int g = luma + ((-fix(0.34414) * cb + ONE_HALF - fix(0.71414) * cr) >> SCALE_BITS);
    int b = luma + ((fix(1.77200) * cb + ONE_HALF) >> SCALE_BITS);
    p[0] = 255 - Math.min(255, Math.max(0, r));
    p[1] = 255 - Math.min(255, Math.max(0, g));
    p[2] = 255 - Math.min(255, Math.max(0, b));
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
