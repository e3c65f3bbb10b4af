package org.finetune.testing;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import javax.imageio.ImageIO;

/** Small labelled image folders for tests: each class a colour and stripe direction, with noise. */
public final class Images {
  private Images() {}

  /** Writes {@code perClass} images per class under {@code root/<class>/}, alternating PNG and JPEG. */
  public static Path folder(Path root, List<String> classes, int perClass, int size, long seed) {
    Random random = new Random(seed);
    try {
      for (int c = 0; c < classes.size(); c++) {
        Path dir = Files.createDirectories(root.resolve(classes.get(c)));
        for (int i = 0; i < perClass; i++) {
          BufferedImage img = new BufferedImage(size, size, BufferedImage.TYPE_INT_RGB);
          for (int y = 0; y < size; y++) {
            for (int x = 0; x < size; x++) {
              int stripe = switch (c % 3) {
                case 0 -> (y / 4) % 2;
                case 1 -> (x / 4) % 2;
                default -> ((x + y) / 4) % 2;
              };
              int base = stripe * 120 + random.nextInt(60);
              int r = c % 3 == 0 ? base + 60 : base / 2;
              int g = c % 3 == 1 ? base + 60 : base / 2;
              int b = c % 3 == 2 ? base + 60 : base / 2;
              img.setRGB(x, y, (Math.min(r, 255) << 16) | (Math.min(g, 255) << 8) | Math.min(b, 255));
            }
          }
          String format = i % 2 == 0 ? "png" : "jpg";
          ImageIO.write(img, format, dir.resolve(String.format("%s_%02d.%s", classes.get(c), i, format)).toFile());
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return root;
  }

  /** Adds unreadable files to class folders: empty, truncated PNG and JPEG, text named .png. Returns them. */
  public static List<Path> corrupt(Path root, List<String> classes) {
    List<Path> bad = new ArrayList<>();
    try {
      Path first = root.resolve(classes.get(0));
      Path png;
      Path jpg;
      try (var list = Files.list(first)) {
        List<Path> files = list.sorted().toList();
        png = files.stream().filter(p -> p.toString().endsWith(".png")).findFirst().orElseThrow();
        jpg = files.stream().filter(p -> p.toString().endsWith(".jpg")).findFirst().orElseThrow();
      }
      bad.add(Files.write(first.resolve("zz_empty.png"), new byte[0]));
      byte[] p = Files.readAllBytes(png);
      bad.add(Files.write(root.resolve(classes.get(1)).resolve("zz_cut.png"), java.util.Arrays.copyOf(p, p.length / 2)));
      byte[] j = Files.readAllBytes(jpg);
      bad.add(Files.write(root.resolve(classes.get(1)).resolve("zz_cut.jpg"), java.util.Arrays.copyOf(j, j.length / 2)));
      bad.add(Files.writeString(root.resolve(classes.get(classes.size() - 1)).resolve("zz_notes.png"), "not an image\n"));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return bad;
  }

  /** One seeded 32x32 RGB input of preprocessed-looking values, shape [1, 32, 32, 3]. */
  public static org.finetune.data.NpyArray randomInput(int seed) {
    Random r = new Random(seed);
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(32 * 32 * 3 * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 32 * 32 * 3; i++) {
      b.putFloat((float) (r.nextDouble() * 255 - 120));
    }
    return new org.finetune.data.NpyArray("float32", new long[] {1, 32, 32, 3}, b.array());
  }
}
