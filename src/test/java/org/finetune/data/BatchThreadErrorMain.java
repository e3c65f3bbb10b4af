package org.finetune.data;

import java.nio.file.Path;
import java.util.Iterator;

/**
 * Run by {@code ImageDatasetTest} in a JVM with a small heap: batches of {@code SIZE}x{@code SIZE}
 * images until the batch thread runs out of memory, then says what the consumer saw.
 *
 * <p>Usage: BatchThreadErrorMain FOLDER SIZE BATCH
 */
public final class BatchThreadErrorMain {
  private BatchThreadErrorMain() {}

  public static void main(String[] args) {
    int size = Integer.parseInt(args[1]);
    ImageDataset.Options options = ImageDataset.Options.of(size, size, ImageOps.Preprocess.NONE,
        Integer.parseInt(args[2])).shuffled(false).caching(0);
    try (ImageDataset d = ImageDataset.open(ImageFolder.scan(Path.of(args[0])).items(), options)) {
      for (int epoch = 0; epoch < 1000; epoch++) {
        Iterator<ImageDataset.Batch> it = d.epoch(epoch, 0);
        while (it.hasNext()) {
          it.next();
        }
      }
      System.out.println("no error");
    } catch (Throwable e) {
      System.out.println("consumer saw " + e.getClass().getSimpleName() + " from thread "
          + (e.getStackTrace().length > 0 ? threadOf(e) : "?"));
    }
  }

  private static String threadOf(Throwable e) {
    for (StackTraceElement f : e.getStackTrace()) {
      if (f.getMethodName().equals("batch") || f.getMethodName().contains("lambda$epoch")) {
        return "finetune-batches";
      }
    }
    return "other";
  }
}
