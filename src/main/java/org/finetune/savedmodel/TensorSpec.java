package org.finetune.savedmodel;

import java.util.List;
import java.util.Objects;

/**
 * One input or output of a signature.
 *
 * @param key the signature's name for it (e.g. {@code token_ids})
 * @param tensorName the graph tensor that carries it (e.g. {@code serving_default_token_ids:0})
 * @param dtype the dtype in Python's spelling ({@code float32}, {@code int32}, ...)
 * @param shape dimensions, -1 where unknown; empty for a scalar
 * @param rankKnown false when even the rank is unknown
 */
public record TensorSpec(String key, String tensorName, String dtype, List<Long> shape, boolean rankKnown) {
  public TensorSpec {
    Objects.requireNonNull(key, "key");
    Objects.requireNonNull(tensorName, "tensorName");
    Objects.requireNonNull(dtype, "dtype");
    shape = List.copyOf(shape);
  }

  /**
   * This spec with the free dimensions after the batch taken from {@code example}, the shape of
   * one example; itself when the ranks differ.
   */
  public TensorSpec withFreeDimensions(long[] example) {
    if (!rankKnown || shape.size() != example.length + 1) {
      return this;
    }
    List<Long> fixed = new java.util.ArrayList<>(shape);
    for (int i = 0; i < example.length; i++) {
      if (fixed.get(i + 1) < 0) {
        fixed.set(i + 1, example[i]);
      }
    }
    return new TensorSpec(key, tensorName, dtype, fixed, true);
  }

  /** The shape as Python prints a TensorSpec's: {@code (None, 32, 32, 3)}. */
  public String shapeText() {
    if (!rankKnown) {
      return "<unknown>";
    }
    StringBuilder b = new StringBuilder("(");
    for (int i = 0; i < shape.size(); i++) {
      b.append(i > 0 ? ", " : "").append(shape.get(i) < 0 ? "None" : shape.get(i).toString());
    }
    return b.append(shape.size() == 1 ? ",)" : ")").toString();
  }
}
