package org.finetune.data;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.Random;

/**
 * Examples held as arrays, in batches as Keras's {@code fit(x, y, batch_size, shuffle)} takes them:
 * one array per model input and one of targets (or one per output), each with one row per
 * example; the last batch of an epoch holds what is left. Shuffled per epoch, seeded by the seed
 * and the epoch, so a resumed epoch sees the same batches. Inputs may be mapped from files
 * ({@link MappedNpy}); a batch reads only its rows, and a split only narrows the rows in view.
 */
public final class ArrayDataset {
  /**
   * @param batchSize examples per batch
   * @param shuffle reshuffle the examples every epoch (else they come in file order)
   * @param seed seeds the shuffling
   */
  public record Options(int batchSize, boolean shuffle, long seed) {
    public Options {
      if (batchSize < 1) {
        throw new IllegalArgumentException("the batch size must be at least 1, got " + batchSize);
      }
    }
  }

  /**
   * One batch: rows of every input, and the same rows of the targets (by output key when the
   * dataset has targets for several outputs; else under {@link #TARGETS}).
   */
  public record Rows(Map<String, NpyArray> inputs, Map<String, NpyArray> targets) {}

  /** The key of the one array of targets of a dataset for one output. */
  public static final String TARGETS = "";

  private final Map<String, ExampleArray> inputs;
  private final Map<String, NpyArray> targets;
  private final Options options;
  /** The rows of the arrays this dataset holds, in file order. */
  private final int[] index;

  private ArrayDataset(Map<String, ExampleArray> inputs, Map<String, NpyArray> targets, Options options, int[] index) {
    this.inputs = Collections.unmodifiableMap(new LinkedHashMap<>(inputs));
    this.targets = Collections.unmodifiableMap(new LinkedHashMap<>(targets));
    this.options = Objects.requireNonNull(options, "options");
    this.index = index;
  }

  /**
   * A dataset of {@code inputs} (by the signature's input names) and {@code targets}.
   *
   * @throws IllegalArgumentException when the arrays disagree on the number of examples, or there
   *     are none
   */
  public static ArrayDataset of(Map<String, ? extends ExampleArray> inputs, NpyArray targets, Options options) {
    return ofOutputs(inputs, Map.of(TARGETS, targets), options);
  }

  /**
   * A dataset of {@code inputs} and the targets of several outputs, by output key.
   *
   * @throws IllegalArgumentException when the arrays disagree on the number of examples, or there
   *     are none
   */
  public static ArrayDataset ofOutputs(Map<String, ? extends ExampleArray> inputs, Map<String, NpyArray> targets,
      Options options) {
    if (targets.isEmpty()) {
      throw new IllegalArgumentException("there are no targets");
    }
    long n = -1;
    for (Map.Entry<String, NpyArray> t : targets.entrySet()) {
      String what = t.getKey().equals(TARGETS) ? "the targets" : "the targets of " + t.getKey();
      if (t.getValue().shape().length == 0) {
        throw new IllegalArgumentException(what + " are a scalar; they need one row per example");
      }
      if (n >= 0 && t.getValue().shape()[0] != n) {
        throw new IllegalArgumentException(what + " have " + t.getValue().shape()[0] + " rows and the others " + n
            + "; every array needs one row per example");
      }
      n = t.getValue().shape()[0];
    }
    if (n == 0) {
      throw new IllegalArgumentException("there are no examples (0 rows of targets)");
    }
    if (inputs.isEmpty()) {
      throw new IllegalArgumentException("there are no inputs");
    }
    for (Map.Entry<String, ? extends ExampleArray> e : inputs.entrySet()) {
      long[] shape = e.getValue().shape();
      if (shape.length == 0 || shape[0] != n) {
        throw new IllegalArgumentException("input '" + e.getKey() + "' has " + (shape.length == 0 ? "no" : shape[0])
            + " rows and the targets have " + n + "; every array needs one row per example");
      }
    }
    return new ArrayDataset(new LinkedHashMap<>(inputs), targets, options, range(0, Math.toIntExact(n)));
  }

  private static int[] range(int from, int to) {
    int[] rows = new int[to - from];
    for (int i = 0; i < rows.length; i++) {
      rows[i] = from + i;
    }
    return rows;
  }

  /**
   * This dataset split as Keras's {@code validation_split} splits: the last {@code fraction} of the
   * examples (before any shuffling) validate, the rest train.
   *
   * @return {training, validation}; validation does not shuffle
   */
  public ArrayDataset[] split(double fraction) {
    if (!(fraction > 0 && fraction < 1)) {
      throw new IllegalArgumentException("the validation fraction must be in (0, 1), got " + fraction);
    }
    int examples = examples();
    int validation = (int) (fraction * examples);
    if (validation == 0 || validation == examples) {
      throw new IllegalArgumentException("a validation fraction of " + fraction + " of " + examples
          + " examples leaves " + (validation == 0 ? "none to validate on" : "none to train on"));
    }
    int train = examples - validation;
    return new ArrayDataset[] {
        new ArrayDataset(inputs, targets, options, java.util.Arrays.copyOfRange(index, 0, train)),
        new ArrayDataset(inputs, targets, new Options(options.batchSize(), false, options.seed()),
            java.util.Arrays.copyOfRange(index, train, examples))};
  }

  /** The same examples with other options. */
  public ArrayDataset with(Options other) {
    return new ArrayDataset(inputs, targets, other, index);
  }

  public int examples() {
    return index.length;
  }

  /** The targets of the examples in view, by output key (or under {@link #TARGETS} alone). */
  public Map<String, NpyArray> targets() {
    Map<String, NpyArray> out = new LinkedHashMap<>();
    targets.forEach((k, v) -> out.put(k, v.rows(index)));
    return out;
  }

  /** Whether the targets are by output key, for several outputs. */
  public boolean byOutput() {
    return !targets.containsKey(TARGETS);
  }

  public Options options() {
    return options;
  }

  public int batchesPerEpoch() {
    return (examples() + options.batchSize() - 1) / options.batchSize();
  }

  /** The batches of {@code epoch} from batch {@code start} on. */
  public Iterator<Rows> epoch(int epoch, int start) {
    List<Integer> order = new ArrayList<>(index.length);
    for (int row : index) {
      order.add(row);
    }
    if (options.shuffle()) {
      Collections.shuffle(order, new Random(options.seed() * 1_000_003L + epoch));
    }
    int batches = batchesPerEpoch();
    return new Iterator<>() {
      int next = start;

      @Override
      public boolean hasNext() {
        return next < batches;
      }

      @Override
      public Rows next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        int from = next * options.batchSize();
        int to = Math.min(order.size(), from + options.batchSize());
        int[] rows = new int[to - from];
        for (int i = 0; i < rows.length; i++) {
          rows[i] = order.get(from + i);
        }
        next++;
        Map<String, NpyArray> in = new LinkedHashMap<>();
        inputs.forEach((k, v) -> in.put(k, v.rows(rows)));
        Map<String, NpyArray> t = new LinkedHashMap<>();
        targets.forEach((k, v) -> t.put(k, v.rows(rows)));
        return new Rows(in, t);
      }
    };
  }
}
