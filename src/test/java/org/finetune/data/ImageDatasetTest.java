package org.finetune.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;
import org.finetune.testing.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Batches: seeded order, augmentation that depends only on the seed, the epoch and the position. */
class ImageDatasetTest {
  @TempDir
  Path tmp;

  static byte[] first(ImageDataset d, int epoch) {
    Iterator<ImageDataset.Batch> it = d.epoch(epoch, 0);
    return it.next().images().data();
  }

  @Test
  void augmentationIsReproducibleAndChangesWithTheEpoch() {
    Path root = Images.folder(tmp.resolve("data"), List.of("a", "b"), 4, 16, 2);
    List<ImageFolder.Item> items = ImageFolder.scan(root).items();
    ImageDataset.Options plain = ImageDataset.Options.of(16, 16, ImageOps.Preprocess.NONE, 4).shuffled(false);
    ImageDataset.Options augmented = plain.flipping(true).zooming(0.3).brightening(0.2);
    try (ImageDataset p = ImageDataset.open(items, plain); ImageDataset a = ImageDataset.open(items, augmented);
        ImageDataset b = ImageDataset.open(items, augmented)) {
      assertArrayEquals(first(p, 0), first(p, 1), "without augmentation every epoch sees the same pixels");
      assertArrayEquals(first(a, 1), first(b, 1), "the same seed, epoch and position give the same augmentation");
      assertFalse(java.util.Arrays.equals(first(a, 0), first(a, 1)), "another epoch, other augmentation");
      assertFalse(java.util.Arrays.equals(first(p, 0), first(a, 0)), "augmentation changes the pixels");
      double[] values = a.epoch(2, 0).next().images().toDoubles();
      for (double v : values) {
        assertTrue(v >= 0 && v <= 255, "brightness is clipped to the pixel range: " + v);
      }
      assertTrue(augmented.augmented());
      assertFalse(plain.augmented());
      assertEquals(2, p.batchesPerEpoch());
    }
  }

  /**
   * The batch thread running out of memory reaches the consumer as the error it is, instead of
   * leaving it waiting for a batch forever: a JVM with a 28 MB heap batches 256x256 images
   * (measured: without the fix it hangs after the batch thread dies).
   */
  @Test
  void anErrorInTheBatchThreadReachesTheConsumer() throws Exception {
    Path root = Images.folder(tmp.resolve("data"), List.of("a", "b"), 16, 32, 4);
    Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx28m",
        "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"), BatchThreadErrorMain.class.getName(),
        root.toString(), "256", "16").redirectErrorStream(true).start();
    StringBuilder out = new StringBuilder();
    Thread reader = new Thread(() -> {
      try {
        out.append(new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8));
      } catch (java.io.IOException e) {
        out.append(e);
      }
    });
    reader.start();
    boolean ended = p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS);
    if (!ended) {
      p.destroyForcibly().waitFor();
    }
    reader.join(10_000);
    assertTrue(ended, "the consumer waited for a batch that never came:\n" + out);
    assertTrue(out.toString().contains("consumer saw OutOfMemoryError from thread finetune-batches"), out.toString());
  }
}
