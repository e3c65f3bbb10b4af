package org.finetune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.Transparency;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ComponentColorModel;
import java.awt.image.DataBuffer;
import java.awt.image.WritableRaster;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageTypeSpecifier;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.metadata.IIOMetadata;
import javax.imageio.metadata.IIOMetadataNode;
import javax.imageio.stream.ImageOutputStream;
import org.finetune.testing.Python;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Node;

/**
 * Our decoding, resizing and preprocessing against TensorFlow's and Keras's on files of every
 * kind we accept, including the JPEGs Commons Imaging gets wrong and 16-bit PNGs, and the files
 * we must refuse.
 */
class ImageDecodingTest {
  static final int W = 37;
  static final int H = 29;

  @TempDir
  Path tmp;

  static BufferedImage pattern(int type) {
    BufferedImage img = new BufferedImage(W, H, type);
    Random random = new Random(5);
    for (int y = 0; y < H; y++) {
      for (int x = 0; x < W; x++) {
        int r = (x * 7 + random.nextInt(24)) & 0xff;
        int g = (y * 9 + random.nextInt(24)) & 0xff;
        int b = ((x + y) * 4 + random.nextInt(24)) & 0xff;
        int a = 60 + ((x * y) % 190);
        img.setRGB(x, y, (a << 24) | (r << 16) | (g << 8) | b);
      }
    }
    return img;
  }

  static BufferedImage rgb16() {
    ComponentColorModel cm = new ComponentColorModel(ColorSpace.getInstance(ColorSpace.CS_sRGB), new int[] {16, 16, 16},
        false, false, Transparency.OPAQUE, DataBuffer.TYPE_USHORT);
    WritableRaster raster = cm.createCompatibleWritableRaster(W, H);
    Random random = new Random(9);
    for (int y = 0; y < H; y++) {
      for (int x = 0; x < W; x++) {
        for (int c = 0; c < 3; c++) {
          raster.setSample(x, y, c, random.nextInt(65536));
        }
      }
    }
    return new BufferedImage(cm, raster, false, null);
  }

  static void writeJpeg(BufferedImage img, Path file, boolean progressive, int restartInterval) throws IOException {
    ImageWriter writer = ImageIO.getImageWritersByFormatName("jpeg").next();
    ImageWriteParam param = writer.getDefaultWriteParam();
    param.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
    param.setCompressionQuality(0.9f);
    if (progressive) {
      param.setProgressiveMode(ImageWriteParam.MODE_DEFAULT);
    }
    IIOMetadata metadata = writer.getDefaultImageMetadata(ImageTypeSpecifier.createFromRenderedImage(img), param);
    if (restartInterval > 0) {
      String format = "javax_imageio_jpeg_image_1.0";
      IIOMetadataNode root = (IIOMetadataNode) metadata.getAsTree(format);
      Node markers = root.getElementsByTagName("markerSequence").item(0);
      IIOMetadataNode dri = new IIOMetadataNode("dri");
      dri.setAttribute("interval", Integer.toString(restartInterval));
      markers.insertBefore(dri, markers.getFirstChild());
      metadata.setFromTree(format, root);
    }
    try (ImageOutputStream out = ImageIO.createImageOutputStream(file.toFile())) {
      writer.setOutput(out);
      writer.write(null, new IIOImage(img, null, metadata), param);
    } finally {
      writer.dispose();
    }
  }

  static boolean hasRestartMarkers(Path file) throws IOException {
    byte[] b = Files.readAllBytes(file);
    for (int i = 0; i + 1 < b.length; i++) {
      if ((b[i] & 0xff) == 0xff && (b[i + 1] & 0xff) == 0xdd) {
        return true;
      }
    }
    return false;
  }

  /** Good files by name; JPEGs are lossy to decode too (IDCT rounding), the rest must match exactly. */
  Map<String, Path> goodFiles() throws IOException {
    Map<String, Path> files = new LinkedHashMap<>();
    BufferedImage rgb = pattern(BufferedImage.TYPE_INT_RGB);
    files.put("rgb.png", write(rgb, "png", "rgb.png"));
    files.put("rgba.png", write(pattern(BufferedImage.TYPE_INT_ARGB), "png", "rgba.png"));
    files.put("grey.png", write(pattern(BufferedImage.TYPE_BYTE_GRAY), "png", "grey.png"));
    files.put("grey16.png", write(pattern(BufferedImage.TYPE_USHORT_GRAY), "png", "grey16.png"));
    files.put("rgb16.png", write(rgb16(), "png", "rgb16.png"));
    files.put("palette.png", write(pattern(BufferedImage.TYPE_BYTE_INDEXED), "png", "palette.png"));
    files.put("palette.gif", write(pattern(BufferedImage.TYPE_BYTE_INDEXED), "gif", "palette.gif"));
    files.put("rgb.bmp", write(rgb, "bmp", "rgb.bmp"));
    Path jpeg = tmp.resolve("baseline.jpg");
    writeJpeg(rgb, jpeg, false, 0);
    files.put("baseline.jpg", jpeg);
    Path progressive = tmp.resolve("progressive.jpg");
    writeJpeg(rgb, progressive, true, 0);
    files.put("progressive.jpg", progressive);
    Path restart = tmp.resolve("restart.jpg");
    writeJpeg(rgb, restart, false, 2);
    assertTrue(hasRestartMarkers(restart), "the test JPEG must have restart markers");
    files.put("restart.jpg", restart);
    Path greyJpeg = tmp.resolve("grey.jpg");
    writeJpeg(pattern(BufferedImage.TYPE_BYTE_GRAY), greyJpeg, false, 0);
    files.put("grey.jpg", greyJpeg);
    // A PNG named .jpg is still a PNG: the format comes from the bytes.
    Path misnamed = tmp.resolve("actually_png.jpg");
    Files.copy(files.get("rgb.png"), misnamed);
    files.put("actually_png.jpg", misnamed);
    return files;
  }

  private Path write(BufferedImage img, String format, String name) throws IOException {
    Path f = tmp.resolve(name);
    assertTrue(ImageIO.write(img, format, f.toFile()), "no ImageIO writer for " + format);
    return f;
  }

  @Test
  void decodingResizingAndPreprocessingMatchTensorFlowAndKeras() throws IOException {
    Map<String, Path> files = goodFiles();
    List<String> names = new ArrayList<>(files.keySet());
    Path out = tmp.resolve("tf");
    int oh = 24;
    int ow = 40;
    StringBuilder list = new StringBuilder();
    names.forEach(n -> list.append(files.get(n)).append('\n'));
    Python.runWithInput("reference_images.py", list.toString(), "--size", Integer.toString(oh), Integer.toString(ow),
        "--out", out.toString());
    for (int i = 0; i < names.size(); i++) {
      String name = names.get(i);
      ImageDecoder.Image ours = ImageDecoder.decode(files.get(name));
      assertEquals(W, ours.width(), name);
      assertEquals(H, ours.height(), name);
      double[] tfDecoded = NpyArray.read(out.resolve(i + "_decoded.npy")).toDoubles();
      double decodeDiff = maxAbsDiff(tfDecoded, ours.rgb());
      boolean jpeg = name.endsWith(".jpg") && !name.startsWith("actually_png");
      String jpegNote = "";
      if (jpeg) {
        // TensorFlow decodes JPEG with libjpeg's fast integer IDCT by default; ImageIO has only the
        // accurate one. Against TensorFlow's accurate IDCT we must match; against its default we
        // report how far the fast one strays.
        double accurate = maxAbsDiff(NpyArray.read(out.resolve(i + "_accurate.npy")).toDoubles(), ours.rgb());
        assertTrue(accurate <= 1, name + ": decoded pixels differ from TensorFlow's accurate IDCT by " + accurate);
        jpegNote = String.format(" (vs INTEGER_ACCURATE %.0f; vs the default fast IDCT: max %.0f, mean %.3f)",
            accurate, decodeDiff, meanAbsDiff(tfDecoded, ours.rgb()));
      } else {
        assertEquals(0.0, decodeDiff, name + ": decoded pixels differ from TensorFlow's");
      }
      // Resize and preprocessing, on TensorFlow's own decoded pixels, so that only they are compared.
      float[] decoded = new float[tfDecoded.length];
      for (int k = 0; k < decoded.length; k++) {
        decoded[k] = (float) tfDecoded[k];
      }
      float[] resized = ImageOps.resizeBilinear(decoded, H, W, oh, ow);
      double resizeDiff = maxAbsDiff(NpyArray.read(out.resolve(i + "_resized.npy")).toDoubles(), resized);
      assertTrue(resizeDiff <= 2e-5, name + ": resized differs from tf.image.resize by " + resizeDiff);
      double worstMode = 0;
      for (ImageOps.Preprocess mode : List.of(ImageOps.Preprocess.CAFFE, ImageOps.Preprocess.TF, ImageOps.Preprocess.TORCH)) {
        double[] keras = NpyArray.read(out.resolve(i + "_" + mode.name().toLowerCase() + ".npy")).toDoubles();
        float[] ourMode = ImageOps.preprocess(resized.clone(), mode);
        double d = maxAbsDiff(keras, ourMode);
        assertTrue(d <= 2e-5, name + " " + mode + ": differs from Keras's preprocess_input by " + d);
        worstMode = Math.max(worstMode, d);
      }
      String grey = greyAgainstTensorFlow(out, i, name, files.get(name), jpeg);
      System.out.printf("image %-18s decode %.0f%s, resize %.3g, preprocess %.3g, grey %s%n", name, decodeDiff,
          jpegNote, resizeDiff, worstMode, grey);
    }
  }

  /**
   * Grey pixels (what a model of one channel is fed) against TensorFlow's {@code channels=1}
   * decode, as Keras's {@code color_mode="grayscale"} reads the file: equal; a JPEG's luma plane
   * equal to TensorFlow's accurate IDCT's, and its distance to the default fast IDCT reported.
   */
  private static String greyAgainstTensorFlow(Path out, int i, String name, Path file, boolean jpeg)
      throws IOException {
    float[] grey = ImageDecoder.decodeGrey(file).grey();
    if (Files.exists(out.resolve(i + "_grey_error.txt"))) {
      return "(TensorFlow decodes it in colour only: " + Files.readString(out.resolve(i + "_grey_error.txt")).trim()
          + ")";
    }
    if (!jpeg) {
      double d = maxAbsDiff(NpyArray.read(out.resolve(i + "_grey.npy")).toDoubles(), grey);
      if (name.equals("rgb16.png")) {
        // libpng takes the grey of the 16-bit samples, then their high byte; ours is the grey of
        // the high bytes: the two differ by less than one level before truncating, so by 0 or 1.
        assertTrue(d <= 1, name + ": grey pixels differ from TensorFlow's channels=1 decode by " + d);
        return String.format("%.0f (16-bit colour: grey of the high bytes)", d);
      }
      assertEquals(0.0, d, name + ": grey pixels differ from TensorFlow's channels=1 decode");
      return "0";
    }
    double accurate = maxAbsDiff(NpyArray.read(out.resolve(i + "_grey_accurate.npy")).toDoubles(), grey);
    assertTrue(accurate <= 1, name + ": grey pixels differ from TensorFlow's accurate IDCT by " + accurate);
    double[] fast = NpyArray.read(out.resolve(i + "_grey.npy")).toDoubles();
    return String.format("%.0f vs INTEGER_ACCURATE (vs the fast IDCT: max %.0f, mean %.3f)", accurate,
        maxAbsDiff(fast, grey), meanAbsDiff(fast, grey));
  }

  @Test
  void tiffDecodesToImageIosPixels() throws IOException {
    BufferedImage rgb = pattern(BufferedImage.TYPE_INT_RGB);
    Path tiff = write(rgb, "tiff", "rgb.tiff");
    ImageDecoder.Image ours = ImageDecoder.decode(tiff);
    BufferedImage reference = ImageIO.read(tiff.toFile());
    for (int y = 0; y < H; y++) {
      for (int x = 0; x < W; x++) {
        int p = reference.getRGB(x, y);
        int o = (y * W + x) * 3;
        assertEquals((p >> 16) & 0xff, (int) ours.rgb()[o]);
        assertEquals((p >> 8) & 0xff, (int) ours.rgb()[o + 1]);
        assertEquals(p & 0xff, (int) ours.rgb()[o + 2]);
      }
    }
  }

  @Test
  void damagedFilesAreRefusedWithTheReason() throws IOException {
    Map<String, Path> good = goodFiles();
    Path empty = Files.write(tmp.resolve("empty.png"), new byte[0]);
    Path text = Files.writeString(tmp.resolve("notes.png"), "this is not an image\n");
    byte[] png = Files.readAllBytes(good.get("rgb.png"));
    Path cutPng = Files.write(tmp.resolve("cut.png"), java.util.Arrays.copyOf(png, png.length / 2));
    byte[] jpg = Files.readAllBytes(good.get("baseline.jpg"));
    Path cutJpg = Files.write(tmp.resolve("cut.jpg"), java.util.Arrays.copyOf(jpg, jpg.length / 2));
    assertTrue(message(empty).contains("empty file"));
    assertTrue(message(text).contains("not a JPEG, PNG, GIF, BMP or TIFF"));
    assertTrue(message(cutPng).contains("truncated PNG"), message(cutPng));
    assertTrue(message(cutJpg).contains("JPEG"), message(cutJpg));
  }

  private static String message(Path file) {
    return assertThrows(ImageDecoder.UnreadableImageException.class, () -> ImageDecoder.decode(file)).getMessage();
  }

  static double meanAbsDiff(double[] a, float[] b) {
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += Math.abs(a[i] - b[i]);
    }
    return s / a.length;
  }

  static double maxAbsDiff(double[] a, float[] b) {
    assertEquals(a.length, b.length);
    double m = 0;
    for (int i = 0; i < a.length; i++) {
      m = Math.max(m, Math.abs(a[i] - b[i]));
    }
    return m;
  }

  /**
   * A 69-byte PNG whose header claims 9000x9000 pixels (81 megapixels, over the cap): refused with
   * the reason, and before ImageIO allocates its raster (243 MB for these 8-bit RGB samples).
   */
  @Test
  void aHeaderClaimingMoreThanTheCapIsRefusedBeforeItsPixelsAreAllocated() throws IOException {
    Path huge = Files.write(tmp.resolve("huge.png"), pngHeaderOnly(9000, 9000));
    com.sun.management.ThreadMXBean threads =
        (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
    long before = threads.getCurrentThreadAllocatedBytes();
    ImageDecoder.UnreadableImageException e =
        assertThrows(ImageDecoder.UnreadableImageException.class, () -> ImageDecoder.decode(huge));
    long allocated = threads.getCurrentThreadAllocatedBytes() - before;
    assertTrue(allocated < 16L << 20, "decoding a refused header allocated " + allocated + " bytes");
    assertTrue(e.getMessage().contains("9000x9000") && e.getMessage().contains("64 megapixels"), e.getMessage());
  }

  /** PNG signature, an IHDR for 8-bit RGB of the given size, one short IDAT, IEND. */
  private static byte[] pngHeaderOnly(int width, int height) throws IOException {
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    out.write(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
    java.nio.ByteBuffer ihdr = java.nio.ByteBuffer.allocate(13).putInt(width).putInt(height).put((byte) 8)
        .put((byte) 2).put((byte) 0).put((byte) 0).put((byte) 0);
    pngChunk(out, "IHDR", ihdr.array());
    java.util.zip.Deflater deflater = new java.util.zip.Deflater();
    deflater.setInput(new byte[64]);
    deflater.finish();
    byte[] idat = new byte[128];
    int n = deflater.deflate(idat);
    deflater.end();
    pngChunk(out, "IDAT", java.util.Arrays.copyOf(idat, n));
    pngChunk(out, "IEND", new byte[0]);
    return out.toByteArray();
  }

  private static void pngChunk(java.io.ByteArrayOutputStream out, String type, byte[] data) throws IOException {
    byte[] name = type.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    java.util.zip.CRC32 crc = new java.util.zip.CRC32();
    crc.update(name);
    crc.update(data);
    out.write(java.nio.ByteBuffer.allocate(4).putInt(data.length).array());
    out.write(name);
    out.write(data);
    out.write(java.nio.ByteBuffer.allocate(4).putInt((int) crc.getValue()).array());
  }
}
