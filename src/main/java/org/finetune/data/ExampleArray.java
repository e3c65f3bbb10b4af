package org.finetune.data;

/**
 * Examples along the first axis of an array, read a batch of rows at a time: held in memory
 * ({@link NpyArray}) or mapped from a file larger than memory allows ({@link MappedNpy}).
 */
public interface ExampleArray {
  /** NumPy's name of the element type. */
  String dtype();

  /** The dimensions; the first counts the examples. */
  long[] shape();

  /** The examples at {@code rows}, in that order, as an array in memory. */
  NpyArray rows(int[] rows);

  /** The same examples with their elements cast to {@code target}, batch by batch. */
  default ExampleArray castTo(String target) {
    if (dtype().equals(target)) {
      return this;
    }
    ExampleArray base = this;
    return new ExampleArray() {
      @Override
      public String dtype() {
        return target;
      }

      @Override
      public long[] shape() {
        return base.shape();
      }

      @Override
      public NpyArray rows(int[] rows) {
        return base.rows(rows).castTo(target);
      }
    };
  }

  /** Every example, in memory. */
  default NpyArray all() {
    int n = Math.toIntExact(shape()[0]);
    int[] rows = new int[n];
    for (int i = 0; i < n; i++) {
      rows[i] = i;
    }
    return rows(rows);
  }
}
