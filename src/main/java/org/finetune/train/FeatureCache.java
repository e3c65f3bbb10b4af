package org.finetune.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.NpyArray;

/**
 * The base model's features for every image, computed once, for stages that train a new head
 * alone: each step then feeds the cached features ({@link Trainer#FEATURES}) and the runtime
 * runs the head only. Batches come in the dataset's own order for each epoch, so a run on the
 * cache follows the same steps as a run on the images. Only valid without augmentation (the
 * features would change with every flip). Features stay in memory up to a bound and spill to a
 * memory-mapped temporary file past it.
 */
public final class FeatureCache implements Fit.BatchSource, AutoCloseable {
  private final ImageDataset data;
  private final Map<Path, Integer> slot = new HashMap<>();
  private final long[] featureShape;
  private final int size;
  private final List<ByteBuffer> segments = new ArrayList<>();
  private final int perSegment;
  private final Path spill;
  private final FileChannel channel;

  private FeatureCache(ImageDataset data, long[] featureShape, int count, long memoryBytes) throws IOException {
    this.data = data;
    this.featureShape = featureShape;
    int n = 1;
    for (long d : featureShape) {
      n *= (int) d;
    }
    this.size = n;
    long bytes = (long) count * n * 4;
    this.perSegment = Math.max(1, (int) Math.min(count, (1L << 30) / ((long) n * 4)));
    if (bytes <= memoryBytes) {
      spill = null;
      channel = null;
      for (int i = 0; i < count; i += perSegment) {
        segments.add(ByteBuffer.allocate(Math.min(perSegment, count - i) * n * 4).order(ByteOrder.LITTLE_ENDIAN));
      }
    } else {
      spill = Files.createTempFile("finetune-features-", ".bin");
      channel = FileChannel.open(spill, StandardOpenOption.READ, StandardOpenOption.WRITE,
          StandardOpenOption.DELETE_ON_CLOSE);
      for (int i = 0; i < count; i += perSegment) {
        long length = (long) Math.min(perSegment, count - i) * n * 4;
        MappedByteBuffer m = channel.map(FileChannel.MapMode.READ_WRITE, (long) i * n * 4, length);
        m.order(ByteOrder.LITTLE_ENDIAN);
        segments.add(m);
      }
    }
  }

  /**
   * Runs the base over every image of {@code data} once (its epoch-0 batches) and keeps the
   * features.
   *
   * @param memoryBytes features beyond this many bytes go to a temporary file
   * @throws IllegalArgumentException when the data is augmented or the trainer's stage trains more than the head
   */
  public static FeatureCache build(Trainer trainer, ImageDataset data, String input, long memoryBytes) {
    if (data.options().augmented()) {
      throw new IllegalArgumentException("features cannot be cached with augmentation on: they differ every epoch");
    }
    if (!trainer.headOnly(trainer.stage())) {
      throw new IllegalArgumentException("features can be cached only while the new head alone trains");
    }
    FeatureCache cache = null;
    try {
      Iterator<ImageDataset.Batch> it = data.epoch(0, 0);
      int next = 0;
      while (it.hasNext()) {
        ImageDataset.Batch b = it.next();
        if (b.files().isEmpty()) {
          continue;
        }
        NpyArray f = trainer.features(Map.of(input, b.images()));
        if (cache == null) {
          long[] shape = java.util.Arrays.copyOfRange(f.shape(), 1, f.shape().length);
          cache = new FeatureCache(data, shape, data.size(), memoryBytes);
        }
        ByteBuffer src = ByteBuffer.wrap(f.data()).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < b.files().size(); i++) {
          Path file = b.files().get(i);
          cache.slot.put(file, next);
          ByteBuffer dst = cache.segment(next);
          int offset = cache.offset(next);
          for (int k = 0; k < cache.size; k++) {
            dst.putFloat(offset + k * 4, src.getFloat((i * cache.size + k) * 4));
          }
          next++;
        }
      }
      if (cache == null) {
        throw new IllegalArgumentException("no readable image to compute features of");
      }
      return cache;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot spill features to disk: " + e.getMessage(), e);
    }
  }

  private ByteBuffer segment(int index) {
    return segments.get(index / perSegment);
  }

  private int offset(int index) {
    return (index % perSegment) * size * 4;
  }

  /** Whether the features went to a file. */
  public boolean spilled() {
    return spill != null;
  }

  @Override
  public int batchesPerEpoch() {
    return data.batchesPerEpoch();
  }

  @Override
  public Iterator<Batch> epoch(int epoch, int start) {
    List<ImageFolder.Item> order = data.order(epoch);
    return new Iterator<>() {
      private int b = start;

      @Override
      public boolean hasNext() {
        return b < batchesPerEpoch();
      }

      @Override
      public Batch next() {
        if (!hasNext()) {
          throw new java.util.NoSuchElementException();
        }
        List<ImageFolder.Item> part = data.batchItems(order, b);
        b++;
        return batch(part);
      }
    };
  }

  private Batch batch(List<ImageFolder.Item> part) {
    List<Integer> present = new ArrayList<>();
    List<Integer> y = new ArrayList<>();
    int group = data.framesPerClip();
    for (int i = 0; i < part.size(); i++) {
      ImageFolder.Item item = part.get(i);
      Integer s = slot.get(item.file());
      if (s != null) {
        present.add(s);
        if (i % group == 0) {
          y.add(item.label());
        }
      }
    }
    if (present.isEmpty()) {
      return Batch.unlabelled(Map.of());
    }
    ByteBuffer x = ByteBuffer.allocate(present.size() * size * 4).order(ByteOrder.LITTLE_ENDIAN);
    ByteBuffer l = ByteBuffer.allocate(y.size() * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < present.size(); i++) {
      ByteBuffer seg = segment(present.get(i));
      int off = offset(present.get(i));
      for (int k = 0; k < size; k++) {
        x.putFloat(seg.getFloat(off + k * 4));
      }
    }
    y.forEach(l::putInt);
    long[] shape = new long[featureShape.length + 1];
    shape[0] = present.size();
    System.arraycopy(featureShape, 0, shape, 1, featureShape.length);
    return Batch.of(Map.of(Trainer.FEATURES, new NpyArray("float32", shape, x.array())),
        new NpyArray("int32", new long[] {y.size()}, l.array()));
  }

  @Override
  public void close() {
    segments.clear();
    if (channel != null) {
      try {
        channel.close();
      } catch (IOException e) {
        // The file is deleted on close; nothing else to release.
      }
    }
  }
}
