package org.finetune.serving;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.finetune.data.NpyArray;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.TensorSpec;

/**
 * Predictions from an exported SavedModel for many threads at once, with hot swapping: {@link
 * #swap} loads a newer export completely, then makes it current in one step; calls already
 * running finish on the old model, which is closed when the last of them returns. No call ever
 * sees a closed or half-loaded model. Inputs and outputs are {@link NpyArray}s, so no native
 * memory escapes; everything native is owned here and freed by {@link #close}.
 *
 * <p>Low-rank adapters exported apart ({@code Exporter.exportAdapters}) are applied to the current
 * model by name ({@link #putAdapters}) and chosen per call ({@link #predict(String, Map)}): many
 * sets answer side by side from one loaded base, and putting a set under a name already used
 * switches that name to it for the calls that start afterwards.
 */
public final class Predictor implements AutoCloseable {
  /** A loaded model and the number of holders: the predictor (while current) and running calls. */
  private static final class Loaded {
    final KerasSavedModel model;
    final Path dir;
    final long version;
    final AtomicInteger holders = new AtomicInteger(1);
    /** Adapter sets applied to this model, by the name they were put under. */
    final java.util.concurrent.ConcurrentHashMap<String, org.finetune.train.AdaptedModel> adapters =
        new java.util.concurrent.ConcurrentHashMap<>();
    /** The model directory's digest, computed at the first adapters put (it reads every file). */
    String digest;

    Loaded(KerasSavedModel model, Path dir, long version) {
      this.model = model;
      this.dir = dir;
      this.version = version;
    }

    boolean acquire() {
      while (true) {
        int n = holders.get();
        if (n == 0) {
          return false;
        }
        if (holders.compareAndSet(n, n + 1)) {
          return true;
        }
      }
    }

    void release() {
      if (holders.decrementAndGet() == 0) {
        model.close();
      }
    }
  }

  /** One answer: the outputs and which export (and swap generation) computed them. */
  public record Prediction(Map<String, NpyArray> outputs, Path model, long version) {}

  private final AtomicReference<Loaded> current;
  private final Object swapping = new Object();

  private Predictor(Loaded first) {
    this.current = new AtomicReference<>(first);
  }

  /** Opens an export (its {@code serving_default} signature). */
  public static Predictor open(Path export) {
    return new Predictor(new Loaded(KerasSavedModel.open(export), export, 1));
  }

  /** Runs the current model on {@code inputs} (by signature input name). Thread-safe. */
  public Prediction predict(Map<String, NpyArray> inputs) {
    return withCurrent(l -> new Prediction(l.model.predictArrays(l.model.info().signature(), inputs), l.dir,
        l.version));
  }

  /** Runs {@code call} on the current model, held so that no swap or close frees it meanwhile. */
  private Prediction withCurrent(java.util.function.Function<Loaded, Prediction> call) {
    while (true) {
      Loaded l = current.get();
      if (l == null) {
        throw new IllegalStateException("this predictor is closed");
      }
      if (!l.acquire()) {
        continue; // swapped out and released between the read and the acquire: take the new one
      }
      try {
        return call.apply(l);
      } finally {
        l.release();
      }
    }
  }

  /**
   * Applies the adapters in {@code dir} to the current model under {@code name}; calls naming it
   * that start afterwards use them (a set already under that name answers the calls running).
   * The adapters belong to the model: a {@link #swap} drops them.
   *
   * @throws IllegalArgumentException when the folder holds no adapters, or they were trained on a
   *     base whose directory digest differs from the current model's
   */
  public void putAdapters(String name, java.nio.file.Path dir) {
    org.finetune.train.AdapterSet set = org.finetune.train.AdapterSet.read(dir);
    synchronized (swapping) {
      Loaded l = current.get();
      if (l == null) {
        throw new IllegalStateException("this predictor is closed");
      }
      if (set.baseDigest().isPresent()) {
        if (l.digest == null) {
          l.digest = org.finetune.export.DirectoryDigest.of(l.dir);
        }
        String digest = l.digest;
        if (!digest.equals(set.baseDigest().get())) {
          throw new IllegalArgumentException("the adapters in " + dir + " were trained on another base (digest "
              + set.baseDigest().get() + "); the model answering now, " + l.dir + ", has " + digest);
        }
      }
      l.adapters.put(name, org.finetune.train.AdaptedModel.apply(l.model, set));
    }
  }

  /** Stops answering with the adapters under {@code name}; calls running with them finish. */
  public void removeAdapters(String name) {
    Loaded l = current.get();
    if (l != null) {
      l.adapters.remove(name);
    }
  }

  /** Runs the current model through the adapters put under {@code adapters}. Thread-safe. */
  public Prediction predict(String adapters, Map<String, NpyArray> inputs) {
    return withCurrent(l -> {
      org.finetune.train.AdaptedModel a = l.adapters.get(adapters);
      if (a == null) {
        throw new IllegalArgumentException("no adapters named '" + adapters + "'; there are "
            + (l.adapters.isEmpty() ? "none" : String.join(", ", new java.util.TreeSet<>(l.adapters.keySet()))));
      }
      return new Prediction(a.predict(inputs), l.dir, l.version);
    });
  }

  /**
   * Loads {@code export} and makes it current once it is fully loaded; the previous model is
   * closed when its running calls have returned. The new export must take the same inputs.
   *
   * @throws IllegalArgumentException when its signature's inputs differ; the current model stays
   */
  public void swap(Path export) {
    synchronized (swapping) {
      Loaded old = current.get();
      if (old == null) {
        throw new IllegalStateException("this predictor is closed");
      }
      KerasSavedModel next = KerasSavedModel.open(export);
      List<String> was = inputs(old.model);
      List<String> now = inputs(next);
      if (!was.equals(now)) {
        next.close();
        throw new IllegalArgumentException(export + " takes inputs " + now + ", the current model " + was
            + "; a swap keeps the inputs");
      }
      current.set(new Loaded(next, export, old.version + 1));
      old.release();
    }
  }

  private static List<String> inputs(KerasSavedModel m) {
    return m.info().selectedSignature().inputs().stream().map(t -> t.key() + ":" + t.dtype() + t.shape()).sorted()
        .toList();
  }

  /** The export answering now. */
  public Path model() {
    Loaded l = current.get();
    if (l == null) {
      throw new IllegalStateException("this predictor is closed");
    }
    return l.dir;
  }

  /** The signature's inputs of the current model. */
  public List<TensorSpec> inputs() {
    Loaded l = current.get();
    if (l == null) {
      throw new IllegalStateException("this predictor is closed");
    }
    return l.model.info().selectedSignature().inputs();
  }

  /** Stops answering; the model is closed once running calls return. */
  @Override
  public void close() {
    synchronized (swapping) {
      Loaded l = current.getAndSet(null);
      if (l != null) {
        l.release();
      }
    }
  }
}
