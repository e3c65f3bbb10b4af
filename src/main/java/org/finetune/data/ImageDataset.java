package org.finetune.data;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.finetune.hint.Setting;

/**
 * Labelled images as batches for training: decoded, resized ({@code tf.image.resize}, bilinear)
 * and preprocessed as Keras would, in a seeded order per epoch, prepared on background threads
 * while the runtime trains on the previous batch.
 *
 * <p>When all resized images fit {@link Options#cacheBytes()}, they are decoded once, up front,
 * on all cores; unreadable files are then known before training starts. Otherwise each epoch
 * decodes again. An unreadable file is skipped (and listed by {@link #skipped()}) unless
 * {@link Options#strict()}, when it fails the epoch.
 */
public final class ImageDataset implements AutoCloseable {
  /**
   * @param height image height the model takes
   * @param width image width
   * @param preprocess Keras's preprocessing mode for the model
   * @param batchSize images per batch (the last batch of an epoch may be smaller)
   * @param shuffle reshuffle every epoch (seeded by {@code seed} and the epoch)
   * @param seed seeds shuffling and augmentation
   * @param strict fail on an unreadable file instead of skipping it
   * @param flip random horizontal flips (augmentation; off by default)
   * @param cacheBytes keep resized images in memory up to this many bytes
   * @param zoom random zoom-in: a crop of {@code 1 - zoom} to 1 of each side, resized back (0: off)
   * @param brightness random brightness: add up to {@code brightness * 255} either way, clipped (0: off)
   * @param channels samples per pixel the model takes: 3 (RGB) or 1 (grey, as Keras's
   *     {@code color_mode="grayscale"} decodes)
   */
  public record Options(int height, int width, ImageOps.Preprocess preprocess, int batchSize, boolean shuffle, long seed,
      boolean strict, boolean flip, long cacheBytes, double zoom, double brightness, int channels) {
    public Options {
      if (channels != 1 && channels != 3) {
        throw new IllegalArgumentException("images have 1 (grey) or 3 (RGB) channels, got " + channels);
      }
      if (!ImageOps.fits(preprocess, channels)) {
        throw new IllegalArgumentException(preprocess.name().toLowerCase(java.util.Locale.ROOT) + " preprocessing"
            + " subtracts a mean per RGB channel; grey images take tf or none");
      }
      if (height < 1 || width < 1) {
        throw new IllegalArgumentException("image size must be positive, got " + height + "x" + width);
      }
      if (batchSize < 1) {
        throw new IllegalArgumentException("batch size must be >= 1, got " + batchSize);
      }
      if (!(zoom >= 0 && zoom < 1)) {
        throw new IllegalArgumentException("zoom must be in [0, 1), got " + zoom);
      }
      if (!(brightness >= 0 && brightness <= 1)) {
        throw new IllegalArgumentException("brightness must be in [0, 1], got " + brightness);
      }
    }

    /** Whether any augmentation is on (then images differ every epoch). */
    public boolean augmented() {
      return flip || zoom > 0 || brightness > 0;
    }

    public Options zooming(double z) {
      return new Options(height, width, preprocess, batchSize, shuffle, seed, strict, flip,
          cacheBytes, z, brightness, channels);
    }

    public Options brightening(double b) {
      return new Options(height, width, preprocess, batchSize, shuffle, seed, strict, flip,
          cacheBytes, zoom, b, channels);
    }

    public static Options of(int height, int width, ImageOps.Preprocess preprocess, int batchSize) {
      return new Options(height, width, preprocess, batchSize, true, 1234, false, false, 1L << 30, 0, 0, 3);
    }

    public Options shuffled(boolean on) {
      return new Options(height, width, preprocess, batchSize, on, seed, strict, flip,
          cacheBytes, zoom, brightness, channels);
    }

    public Options seeded(long s) {
      return new Options(height, width, preprocess, batchSize, shuffle, s, strict, flip,
          cacheBytes, zoom, brightness, channels);
    }

    public Options strictly(boolean on) {
      return new Options(height, width, preprocess, batchSize, shuffle, seed, on, flip,
          cacheBytes, zoom, brightness, channels);
    }

    public Options flipping(boolean on) {
      return new Options(height, width, preprocess, batchSize, shuffle, seed, strict, on,
          cacheBytes, zoom, brightness, channels);
    }

    /** Images of {@code c} samples per pixel: 3 (RGB) or 1 (grey). */
    public Options channels(int c) {
      return new Options(height, width, preprocess, batchSize, shuffle, seed, strict, flip,
          cacheBytes, zoom, brightness,
          c);
    }

    public Options caching(long bytes) {
      return new Options(height, width, preprocess, batchSize, shuffle, seed, strict, flip,
          bytes, zoom, brightness, channels);
    }
  }

  /**
   * One batch: images {@code [n, height, width, channels]} float32, labels {@code [n]} int32 (for
   * clips: {@code [n / frames]}, one per clip), and their files.
   */
  public record Batch(NpyArray images, NpyArray labels, List<Path> files) {}

  private final List<ImageFolder.Item> items;
  private final Options options;
  /** Consecutive items that form one example (a clip's frames); 1 for images. */
  private final int group;
  private final float[][] cache;
  private final Set<Path> skipped = ConcurrentHashMap.newKeySet();
  private final ExecutorService decoders;
  private final java.util.Map<ImageFolder.Item, Integer> index = new java.util.HashMap<>();

  private ImageDataset(List<ImageFolder.Item> items, Options options, int group) {
    this.items = List.copyOf(items);
    this.options = options;
    this.group = group;
    int threads = Math.max(1, Runtime.getRuntime().availableProcessors());
    this.decoders = Executors.newFixedThreadPool(threads, r -> {
      Thread t = new Thread(r, "finetune-decode");
      t.setDaemon(true);
      return t;
    });
    long bytes = (long) items.size() * options.height() * options.width() * options.channels() * 4;
    this.cache = bytes <= options.cacheBytes() ? new float[items.size()][] : null;
    for (int i = 0; i < this.items.size(); i++) {
      index.put(this.items.get(i), i);
    }
  }

  /**
   * A dataset over {@code items}; decodes everything now when it fits the cache.
   *
   * @throws InvalidDataException in strict mode, on an unreadable file
   */
  public static ImageDataset open(List<ImageFolder.Item> items, Options options) {
    return open(items, options, 1);
  }

  /**
   * A dataset of clips: {@code frames} consecutive items make one clip (all with its label), a
   * batch holds {@link Options#batchSize()} clips with their frames in order, shuffling moves
   * whole clips, and labels come one per clip. Frames are decoded strictly (a clip with an
   * unreadable frame cannot be skipped frame by frame); augmentation is refused, since a flip would
   * turn a clip moving left into one moving right.
   */
  public static ImageDataset clips(List<ImageFolder.Item> frames, int framesPerClip, Options options) {
    if (framesPerClip < 1 || frames.size() % framesPerClip != 0) {
      throw new IllegalArgumentException(frames.size() + " frames do not make clips of " + framesPerClip);
    }
    if (options.augmented()) {
      throw new IllegalArgumentException("clips cannot be augmented (a flip changes the direction of motion)");
    }
    return open(frames, options.strictly(true), framesPerClip);
  }

  private static ImageDataset open(List<ImageFolder.Item> items, Options options, int group) {
    if (items.isEmpty()) {
      throw new IllegalArgumentException("no images to make batches of");
    }
    ImageDataset d = new ImageDataset(items, options, group);
    if (d.cache != null) {
      List<Future<?>> work = new ArrayList<>();
      for (int i = 0; i < items.size(); i++) {
        int index = i;
        work.add(d.decoders.submit(() -> {
          d.cache[index] = d.load(items.get(index));
          return null;
        }));
      }
      d.await(work);
    }
    return d;
  }

  /** Images in the dataset (unreadable ones included until they are found). */
  public int size() {
    return items.size();
  }

  /** Batches per epoch. */
  public int batchesPerEpoch() {
    int examples = items.size() / group;
    return (examples + options.batchSize() - 1) / options.batchSize();
  }

  /** Frames per clip (consecutive items that make one example); 1 for images. */
  public int framesPerClip() {
    return group;
  }

  /** The items of batch {@code b} of an epoch in order {@code order}. */
  public List<ImageFolder.Item> batchItems(List<ImageFolder.Item> order, int b) {
    int per = options.batchSize() * group;
    return order.subList(Math.min(b * per, order.size()), Math.min((b + 1) * per, order.size()));
  }

  /** Files found unreadable so far (skipped). */
  public Set<Path> skipped() {
    return Set.copyOf(skipped);
  }

  public Options options() {
    return options;
  }

  /** The files in epoch {@code epoch}'s order. */
  public List<ImageFolder.Item> order(int epoch) {
    if (group == 1) {
      List<ImageFolder.Item> order = new ArrayList<>(items);
      if (options.shuffle()) {
        Collections.shuffle(order, new Random(options.seed() * 1_000_003L + epoch));
      }
      return order;
    }
    List<Integer> clips = new ArrayList<>();
    for (int c = 0; c < items.size() / group; c++) {
      clips.add(c);
    }
    if (options.shuffle()) {
      Collections.shuffle(clips, new Random(options.seed() * 1_000_003L + epoch));
    }
    List<ImageFolder.Item> order = new ArrayList<>(items.size());
    for (int c : clips) {
      order.addAll(items.subList(c * group, (c + 1) * group));
    }
    return order;
  }

  /** Batches of one epoch; closing it early stops the background thread that prepares them. */
  public interface Batches extends Iterator<Batch>, AutoCloseable {
    @Override
    void close();
  }

  /**
   * Epoch {@code epoch}'s batches from batch {@code start} on (to resume mid-epoch), prepared
   * two ahead on a background thread. The same epoch and start give the same batches.
   */
  public Batches epoch(int epoch, int start) {
    List<ImageFolder.Item> order = order(epoch);
    int batches = batchesPerEpoch();
    BlockingQueue<Object> queue = new ArrayBlockingQueue<>(2);
    Object end = new Object();
    Thread producer = new Thread(() -> {
      try {
        for (int b = start; b < batches; b++) {
          queue.put(batch(batchItems(order, b), epoch, b * options.batchSize() * group));
        }
        queue.put(end);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      } catch (Throwable e) {
        // Errors too (out of memory, for one): the consumer waits for this thread's next word.
        try {
          queue.put(new Failure(e));
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
        }
      }
    }, "finetune-batches");
    producer.setDaemon(true);
    producer.start();
    return new Batches() {
      private Object next;

      @Override
      public void close() {
        producer.interrupt();
      }

      @Override
      public boolean hasNext() {
        if (next == null) {
          try {
            next = queue.take();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a batch", e);
          }
        }
        if (next instanceof Failure f) {
          if (f.cause() instanceof RuntimeException r) {
            throw r;
          }
          if (f.cause() instanceof Error e) {
            throw e;
          }
          throw new IllegalStateException(f.cause());
        }
        return next != end;
      }

      @Override
      public Batch next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        Batch b = (Batch) next;
        next = null;
        return b;
      }
    };
  }

  private Batch batch(List<ImageFolder.Item> part, int epoch, int offset) {
    float[][] images = new float[part.size()][];
    List<Future<?>> work = new ArrayList<>();
    for (int i = 0; i < part.size(); i++) {
      int k = i;
      work.add(decoders.submit(() -> {
        ImageFolder.Item item = part.get(k);
        float[] pixels = cache != null ? cache[index.get(item)] : load(item);
        images[k] = pixels == null ? null : prepare(pixels.clone(), epoch, offset + k);
        return null;
      }));
    }
    await(work);
    int n = 0;
    for (float[] img : images) {
      n += img == null ? 0 : 1;
    }
    int size = options.height() * options.width() * options.channels();
    ByteBuffer x = ByteBuffer.allocate(n * size * 4).order(ByteOrder.LITTLE_ENDIAN);
    if (group > 1 && n != part.size()) {
      throw new IllegalStateException("a clip has an unreadable frame");
    }
    ByteBuffer y = ByteBuffer.allocate(n / group * 4).order(ByteOrder.LITTLE_ENDIAN);
    List<Path> files = new ArrayList<>();
    for (int i = 0; i < part.size(); i++) {
      if (images[i] != null) {
        for (float v : images[i]) {
          x.putFloat(v);
        }
        if (i % group == 0) {
          y.putInt(part.get(i).label());
        }
        files.add(part.get(i).file());
      }
    }
    return new Batch(new NpyArray("float32", new long[] {n, options.height(), options.width(), options.channels()},
        x.array()),
        new NpyArray("int32", new long[] {n / group}, y.array()), files);
  }

  /** Decoded and resized (0..255), or null when unreadable and not strict. */
  private float[] load(ImageFolder.Item item) {
    try {
      if (options.channels() == 1) {
        ImageDecoder.GreyImage img = ImageDecoder.decodeGrey(item.file());
        return ImageOps.resizeBilinear(img.grey(), img.height(), img.width(), options.height(), options.width(), 1);
      }
      ImageDecoder.Image img = ImageDecoder.decode(item.file());
      return ImageOps.resizeBilinear(img.rgb(), img.height(), img.width(), options.height(), options.width());
    } catch (IOException e) {
      if (options.strict()) {
        throw new InvalidDataException(item.file(), "unreadable image " + e.getMessage(), Setting.STRICT_DATA,
            "replace or remove it (a dataset that is not strict skips an unreadable image with a warning)", e);
      }
      skipped.add(item.file());
      return null;
    }
  }

  /** Augmentation (seeded by epoch and position), then Keras's preprocessing. */
  private float[] prepare(float[] rgb, int epoch, int position) {
    int n = options.channels();
    Random r = new Random(options.seed() * 31 + epoch * 1_000_003L + position);
    boolean flipNow = r.nextBoolean();
    if (options.zoom() > 0) {
      int h = options.height();
      int w = options.width();
      double scale = 1 - options.zoom() * r.nextDouble();
      int ch = Math.max(1, (int) Math.round(h * scale));
      int cw = Math.max(1, (int) Math.round(w * scale));
      int y0 = r.nextInt(h - ch + 1);
      int x0 = r.nextInt(w - cw + 1);
      float[] crop = new float[ch * cw * n];
      for (int y = 0; y < ch; y++) {
        System.arraycopy(rgb, ((y0 + y) * w + x0) * n, crop, y * cw * n, cw * n);
      }
      rgb = ImageOps.resizeBilinear(crop, ch, cw, h, w, n);
    }
    if (options.brightness() > 0) {
      float delta = (float) ((r.nextDouble() * 2 - 1) * options.brightness() * 255);
      for (int i = 0; i < rgb.length; i++) {
        rgb[i] = Math.min(255f, Math.max(0f, rgb[i] + delta));
      }
    }
    if (options.flip()) {
      if (flipNow) {
        int w = options.width();
        for (int y = 0; y < options.height(); y++) {
          for (int x = 0; x < w / 2; x++) {
            for (int c = 0; c < n; c++) {
              int a = (y * w + x) * n + c;
              int b = (y * w + (w - 1 - x)) * n + c;
              float t = rgb[a];
              rgb[a] = rgb[b];
              rgb[b] = t;
            }
          }
        }
      }
    }
    return ImageOps.preprocess(rgb, options.preprocess());
  }

  /** What ended the batch thread, for the consumer to throw. */
  private record Failure(Throwable cause) {}

  private void await(List<Future<?>> work) {
    for (Future<?> f : work) {
      try {
        f.get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while decoding images", e);
      } catch (java.util.concurrent.ExecutionException e) {
        if (e.getCause() instanceof RuntimeException r) {
          throw r;
        }
        throw new IllegalStateException(e.getCause());
      }
    }
  }

  @Override
  public void close() {
    decoders.shutdownNow();
    try {
      decoders.awaitTermination(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
