package org.finetune.train;

import com.google.gson.JsonObject;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import org.finetune.hint.Hint;
import org.finetune.hint.Hinted;
import org.finetune.hint.Setting;

/**
 * The training loop, like Keras's {@code fit}: epochs of batches, validation after each epoch,
 * callbacks around every step and epoch. With {@link Options#unfreezeEvery()} the trainer moves
 * to the plan's next stage every that many epochs (gradual unfreezing). Can start mid-run (from
 * a checkpoint's epoch and batch), and then reaches the same weights as an uninterrupted run,
 * since batches depend only on the epoch and their position.
 */
public final class Fit {
  private Fit() {}

  /** Batches of one epoch, reproducible: the same epoch and start give the same batches. */
  public interface BatchSource {
    int batchesPerEpoch();

    Iterator<Batch> epoch(int epoch, int start);
  }

  /**
   * @param epochs epochs to train (counting those done before a resume)
   * @param unfreezeEvery move to the next stage every this many epochs; empty: stay at stage 0
   */
  public record Options(int epochs, OptionalInt unfreezeEvery, NonFinite onNonFinite) {
    public Options(int epochs, OptionalInt unfreezeEvery) {
      this(epochs, unfreezeEvery, NonFinite.STOP);
    }

    public Options withNonFinite(NonFinite policy) {
      return new Options(epochs, unfreezeEvery, policy);
    }

    public Options {
      java.util.Objects.requireNonNull(onNonFinite, "onNonFinite");
      if (epochs < 1) {
        throw new IllegalArgumentException("epochs must be >= 1, got " + epochs);
      }
      if (unfreezeEvery.isPresent() && unfreezeEvery.getAsInt() < 1) {
        throw new IllegalArgumentException("unfreeze every must be >= 1 epoch, got " + unfreezeEvery.getAsInt());
      }
    }
  }

  /**
   * What a batch with a non-finite loss or gradient does (the step itself never changes the model:
   * see {@link NonFiniteStepException}): stop training, or skip the batch and go on.
   */
  public enum NonFinite { STOP, SKIP }

  /** Training stopped at a non-finite loss or gradient; the model keeps the last good step's weights. */
  public static final class NonFiniteLossException extends RuntimeException implements Hinted {
    private static final long serialVersionUID = 1L;
    private final int epoch;
    private final int batch;
    private final long step;

    NonFiniteLossException(int epoch, int batch, long step) {
      super(Hinted.message(problem(epoch, batch, step), SKIP_FIX));
      this.epoch = epoch;
      this.batch = batch;
      this.step = step;
    }

    private static final String SKIP_FIX = "the non-finite policy SKIP skips such batches instead";

    private static String problem(int epoch, int batch, long step) {
      return "non-finite loss or gradient at epoch " + (epoch + 1) + ", batch " + (batch + 1) + " (optimizer step "
          + step + "); training stopped with the weights of the last good step (checkpoints, if any, hold the"
          + " last completed epoch)";
    }

    @Override
    public Hint hint() {
      return new Hint(problem(epoch, batch, step), Setting.NON_FINITE, SKIP_FIX);
    }

    /** 0-based. */
    public int epoch() {
      return epoch;
    }

    /** 0-based position in the epoch. */
    public int batch() {
      return batch;
    }

    public long step() {
      return step;
    }
  }

  /** Where a run starts: epoch 0, batch 0, unless resuming. */
  public record Start(int epoch, int batch) {
    public static final Start BEGINNING = new Start(0, 0);
  }

  /**
   * One epoch's results.
   *
   * @param logs {@code loss} and metrics over the epoch's training batches (weighted by batch
   *     size), {@code val_*} over the validation set, and {@code lr}
   */
  public record Epoch(int epoch, int stage, Map<String, Double> logs) {
    public Epoch {
      logs = Collections.unmodifiableMap(new LinkedHashMap<>(logs));
    }

    /** {@code {"epoch": 0, "stage": 0, "logs": {"loss": ...}}}; non-finite values as JSON's NaN and Infinity. */
    public JsonObject toJson() {
      JsonObject o = new JsonObject();
      o.addProperty("epoch", epoch);
      o.addProperty("stage", stage);
      JsonObject l = new JsonObject();
      logs.forEach(l::addProperty);
      o.add("logs", l);
      return o;
    }

    /**
     * Reads what {@link #toJson()} wrote.
     *
     * @throws IllegalArgumentException when a key is missing or not a number
     */
    public static Epoch fromJson(JsonObject o) {
      try {
        Map<String, Double> logs = new LinkedHashMap<>();
        o.getAsJsonObject("logs").entrySet().forEach(e -> logs.put(e.getKey(), e.getValue().getAsDouble()));
        return new Epoch(o.get("epoch").getAsInt(), o.get("stage").getAsInt(), logs);
      } catch (RuntimeException e) {
        throw new IllegalArgumentException("an epoch record needs \"epoch\", \"stage\" and numeric \"logs\", got " + o,
            e);
      }
    }
  }

  /** What the loop tells callbacks and what they can ask of it. */
  public static final class Control {
    private final Trainer trainer;
    private final Options options;
    private final int batches;
    private boolean stop;
    private int skipped;
    private int epoch;
    private int batch;

    Control(Trainer trainer, Options options, int batches) {
      this.trainer = trainer;
      this.options = options;
      this.batches = batches;
    }

    public Trainer trainer() {
      return trainer;
    }

    public Options options() {
      return options;
    }

    public int batchesPerEpoch() {
      return batches;
    }

    /** The epoch running now. */
    public int epoch() {
      return epoch;
    }

    /** Batches of the current epoch done so far. */
    public int batch() {
      return batch;
    }

    /** Batches skipped so far for a non-finite loss or gradient. */
    public int skipped() {
      return skipped;
    }

    /** Ends training after the current batch. */
    public void stop() {
      stop = true;
    }

    public boolean stopping() {
      return stop;
    }
  }

  /** Hooks around the loop; every method is optional. */
  public interface Callback {
    default void onTrainBegin(Control c) {}

    default void onEpochBegin(Control c) {}

    default void onBatchEnd(Control c, StepResult result, long size) {}

    default void onEpochEnd(Control c, Epoch epoch) {}

    default void onTrainEnd(Control c, List<Epoch> history) {}
  }

  /** An image dataset's batches, fed to the signature input {@code input}, labels as targets. */
  public static BatchSource images(org.finetune.data.ImageDataset dataset, String input) {
    return new BatchSource() {
      @Override
      public int batchesPerEpoch() {
        return dataset.batchesPerEpoch();
      }

      @Override
      public Iterator<Batch> epoch(int epoch, int start) {
        org.finetune.data.ImageDataset.Batches it = dataset.epoch(epoch, start);
        return new CloseableIterator() {
          @Override
          public void close() {
            it.close();
          }

          @Override
          public boolean hasNext() {
            return it.hasNext();
          }

          @Override
          public Batch next() {
            org.finetune.data.ImageDataset.Batch b = it.next();
            return b.images().shape()[0] == 0 ? Batch.unlabelled(Map.of())
                : Batch.of(Map.of(input, b.images()), b.labels());
          }
        };
      }
    };
  }

  /** An array dataset's batches: its inputs by signature input name, and its targets (by output, for several). */
  public static BatchSource arrays(org.finetune.data.ArrayDataset dataset) {
    return mapped(dataset.batchesPerEpoch(), dataset::epoch, rows -> dataset.byOutput()
        ? Batch.ofOutputs(rows.inputs(), rows.targets())
        : Batch.of(rows.inputs(), rows.targets().get(org.finetune.data.ArrayDataset.TARGETS)));
  }

  /** A text dataset's blocks as unlabelled batches for the causal-LM loss (its targets are its inputs). */
  public static BatchSource tokens(org.finetune.data.TextDataset dataset) {
    return mapped(dataset.batchesPerEpoch(), dataset::epoch, Batch::unlabelled);
  }

  /** Batches made one by one from the items a dataset gives for an epoch from a start. */
  private static <T> BatchSource mapped(int batches,
      java.util.function.BiFunction<Integer, Integer, Iterator<T>> epochs, java.util.function.Function<T, Batch> f) {
    return new BatchSource() {
      @Override
      public int batchesPerEpoch() {
        return batches;
      }

      @Override
      public Iterator<Batch> epoch(int epoch, int start) {
        Iterator<T> it = epochs.apply(epoch, start);
        return new Iterator<>() {
          @Override
          public boolean hasNext() {
            return it.hasNext();
          }

          @Override
          public Batch next() {
            return f.apply(it.next());
          }
        };
      }
    };
  }

  /** An iterator of batches that can stop early. */
  interface CloseableIterator extends Iterator<Batch>, AutoCloseable {
    @Override
    void close();
  }

  /** Trains; returns the history of the epochs run (not those before a resume). */
  public static List<Epoch> run(Trainer trainer, BatchSource train, Optional<BatchSource> validation, Options options,
      List<Callback> callbacks, Start start) {
    Control c = new Control(trainer, options, train.batchesPerEpoch());
    List<Epoch> history = new ArrayList<>();
    // Every callback hears the end of training, also when a step or another callback threw: they
    // release what they hold (a scratch checkpoint, an event writer's graph) there.
    Throwable failure = null;
    try {
      callbacks.forEach(cb -> cb.onTrainBegin(c));
      loop(trainer, train, validation, options, callbacks, start, c, history);
    } catch (RuntimeException | Error e) {
      failure = e;
      throw e;
    } finally {
      RuntimeException ending = null;
      for (Callback cb : callbacks) {
        try {
          cb.onTrainEnd(c, history);
        } catch (RuntimeException e) {
          if (failure != null) {
            failure.addSuppressed(e);
          } else if (ending == null) {
            ending = e;
          } else {
            ending.addSuppressed(e);
          }
        }
      }
      if (ending != null) {
        throw ending;
      }
    }
    return history;
  }

  private static void loop(Trainer trainer, BatchSource train, Optional<BatchSource> validation, Options options,
      List<Callback> callbacks, Start start, Control c, List<Epoch> history) {
    for (int epoch = start.epoch(); epoch < options.epochs() && !c.stop; epoch++) {
      c.epoch = epoch;
      int stage = options.unfreezeEvery().isPresent()
          ? Math.min(epoch / options.unfreezeEvery().getAsInt(), trainer.stageCount() - 1) : trainer.stage();
      if (stage != trainer.stage()) {
        trainer.useStage(stage);
      }
      int first = epoch == start.epoch() ? start.batch() : 0;
      c.batch = first;
      callbacks.forEach(cb -> cb.onEpochBegin(c));
      Mean mean = new Mean();
      if (!trainEpoch(trainer, train.epoch(epoch, first), mean, c, callbacks)) {
        break;
      }
      Map<String, Double> logs = mean.values("");
      if (options.onNonFinite() == NonFinite.SKIP) {
        logs.put("skipped_batches", (double) c.skipped);
      }
      if (validation.isPresent()) {
        logs.putAll(evaluate(trainer, validation.get(), epoch).values("val_"));
      }
      logs.put("lr", trainer.plan().schedule().at(trainer.iterations()) * trainer.rateScale());
      Epoch e = new Epoch(epoch, trainer.stage(), logs);
      history.add(e);
      callbacks.forEach(cb -> cb.onEpochEnd(c, e));
    }
  }

  /**
   * Steps through one epoch's batches; false when a callback stopped it before its end. Closes
   * the batches (stopping their background preparation) either way.
   */
  private static boolean trainEpoch(Trainer trainer, Iterator<Batch> batches, Mean mean, Control c,
      List<Callback> callbacks) {
    try {
      while (batches.hasNext() && !c.stop) {
        Batch batch = batches.next();
        long size = size(batch);
        if (size == 0) {
          c.batch++;
          continue;
        }
        StepResult r;
        try {
          r = trainer.step(batch);
        } catch (NonFiniteStepException e) {
          if (c.options.onNonFinite() == NonFinite.STOP) {
            throw new NonFiniteLossException(c.epoch, c.batch, e.step());
          }
          c.skipped++;
          c.batch++;
          continue;
        }
        mean.add(r, weight(batch, size));
        c.batch++;
        callbacks.forEach(cb -> cb.onBatchEnd(c, r, size));
      }
      return !(c.stop && c.batch < c.batches);
    } finally {
      if (batches instanceof AutoCloseable closeable) {
        try {
          closeable.close();
        } catch (Exception e) {
          // Stopping the producer cannot fail in a way that matters to training.
        }
      }
    }
  }

  /** Loss and metrics over all batches of {@code source} (epoch {@code epoch}'s order), weighted by batch size. */
  public static Mean evaluate(Trainer trainer, BatchSource source, int epoch) {
    Mean mean = new Mean();
    Iterator<Batch> it = source.epoch(epoch, 0);
    while (it.hasNext()) {
      Batch b = it.next();
      long size = size(b);
      if (size > 0) {
        mean.add(trainer.evaluate(b), weight(b, size));
      }
    }
    return mean;
  }

  /**
   * How much a batch counts in a mean: its examples, or for an unlabelled token batch (the
   * causal-LM loss, a mean over predicted tokens) the tokens it predicts, so that epoch means are
   * means over tokens and perplexity is the corpus's.
   */
  static long weight(Batch b, long size) {
    org.finetune.data.NpyArray mask = b.inputs().get(org.finetune.data.TextDataset.PADDING_MASK);
    if (b.labelled() || mask == null || mask.shape().length != 2) {
      return size;
    }
    double[] m = mask.toDoubles();
    int length = (int) mask.shape()[1];
    long predicted = 0;
    for (int i = 0; i < m.length; i++) {
      if (i % length != 0 && m[i] != 0) {
        predicted++;
      }
    }
    return predicted;
  }

  static long size(Batch b) {
    return b.inputs().isEmpty() ? 0 : b.inputs().values().iterator().next().shape()[0];
  }

  /** Running means of loss and metrics, weighted by batch size. */
  public static final class Mean {
    private final Map<String, Double> sums = new LinkedHashMap<>();
    private long count;

    void add(StepResult r, long size) {
      sums.merge("loss", r.loss() * size, Double::sum);
      r.metrics().forEach((k, v) -> sums.merge(k, v * size, Double::sum));
      count += size;
    }

    /**
     * The means, keys prefixed. Perplexity is not averaged but taken as exp of the mean loss (the
     * exponential of a mean is not the mean of exponentials).
     */
    public Map<String, Double> values(String prefix) {
      Map<String, Double> out = new LinkedHashMap<>();
      sums.forEach((k, v) -> out.put(prefix + k, count == 0 ? Double.NaN : v / count));
      if (out.containsKey(prefix + "perplexity")) {
        out.put(prefix + "perplexity", Math.exp(out.get(prefix + "loss")));
      }
      return out;
    }

    public long count() {
      return count;
    }
  }
}
