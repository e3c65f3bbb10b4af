package org.finetune.train;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.finetune.model.FlatSignature;
import org.tensorflow.Graph;
import org.tensorflow.GraphOperation;
import org.tensorflow.Output;
import org.tensorflow.Operand;
import org.tensorflow.ndarray.index.Indices;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.Placeholder;
import org.tensorflow.op.core.ReduceSum;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TInt32;
import org.tensorflow.types.family.TNumber;

/**
 * Builds a loss, and the metrics that go with it, on a flattened signature's output, with Keras's
 * definitions ({@code keras.losses}, reduction "sum over batch size"). Classification losses use
 * the logits beneath a final Softmax (or Sigmoid) when the graph has one: the same value, but
 * stable where probabilities saturate; otherwise they follow Keras on probabilities (normalised
 * and clipped to [1e-7, 1 - 1e-7]).
 */
final class Losses {
  static final float EPSILON = 1e-7f;

  /**
   * The loss graph.
   *
   * @param loss scalar float32 to minimise
   * @param targets the placeholder for labels (empty for the causal-LM loss, whose targets are
   *     the inputs)
   * @param metrics metric name to scalar tensor (accuracy, perplexity, ...)
   * @param fromLogits whether the logits beneath the output were found and used
   */
  record LossGraph(Operand<TFloat32> loss, Optional<String> targets, Map<String, Operand<TFloat32>> metrics,
      boolean fromLogits, Map<String, Target> targetsByOutput) {
    LossGraph(Operand<TFloat32> loss, Optional<String> targets, Map<String, Operand<TFloat32>> metrics,
        boolean fromLogits) {
      this(loss, targets, metrics, fromLogits, Map.of());
    }
  }

  /** The targets placeholder of one output of several, and the loss that reads it. */
  record Target(String placeholder, LossSpec loss) {}

  /**
   * The loss of several outputs trained together, as Keras's multi-output {@code fit}: the sum of
   * each output's loss times its weight. The logs carry each output's loss as
   * {@code <output>_loss} and its metrics as {@code <output>_<metric>}.
   */
  static LossGraph combine(Graph graph, Ops tf, FlatSignature flat, Map<String, Output<?>> outputs,
      List<OutputLoss> losses) {
    Operand<TFloat32> total = null;
    Map<String, Operand<TFloat32>> metrics = new LinkedHashMap<>();
    Map<String, Target> targets = new LinkedHashMap<>();
    for (OutputLoss o : losses) {
      LossGraph one = build(graph, tf.withSubScope("output_" + targets.size()), flat, outputs.get(o.output()),
          o.loss(), o.fromLogits());
      targets.put(o.output(), new Target(one.targets().orElseThrow(), o.loss()));
      metrics.put(o.output() + "_loss", one.loss());
      one.metrics().forEach((k, v) -> metrics.put(o.output() + "_" + k, v));
      Operand<TFloat32> weighted = o.weight() == 1.0 ? one.loss()
          : tf.math.mul(tf.constant((float) o.weight()), one.loss());
      total = total == null ? weighted : tf.math.add(total, weighted);
    }
    return new LossGraph(tf.withName("loss").identity(total), Optional.empty(), metrics, false, targets);
  }

  private Losses() {}

  /** The loss on signature output {@code outputKey}. */
  static LossGraph build(Graph graph, Ops tf, FlatSignature flat, String outputKey, LossSpec spec) {
    String output = flat.outputs().get(outputKey);
    if (output == null) {
      throw new IllegalArgumentException("signature " + flat.signature() + " has no output '" + outputKey
          + "'; it has " + flat.outputs().keySet());
    }
    return build(graph, tf, flat, graph.output(output), spec, false);
  }

  /** The loss on tensor {@code output} of the model's graph (a signature output or a new head's). */
  static LossGraph build(Graph graph, Ops tf, FlatSignature flat, Output<?> output, LossSpec spec) {
    return build(graph, tf, flat, output, spec, false);
  }

  /**
   * The loss on tensor {@code output}; with {@code fromLogits} its values are logits (Keras's
   * {@code from_logits=True}) and a cross-entropy applies the softmax (sigmoid) itself.
   */
  @SuppressWarnings("unchecked")
  static LossGraph build(Graph graph, Ops tf, FlatSignature flat, Output<?> output, LossSpec spec,
      boolean fromLogits) {
    org.finetune.graph.CustomGradients.ensureRegistered();
    Operand<TFloat32> y = (Operand<TFloat32>) output;
    Map<String, Operand<TFloat32>> metrics = new LinkedHashMap<>();
    switch (spec) {
      case SPARSE_CATEGORICAL_CROSSENTROPY: {
        Placeholder<TInt32> labels = tf.withName("targets").placeholder(TInt32.class);
        Optional<Output<?>> logits = fromLogits ? Optional.of(output) : beneath(output, "Softmax");
        // Keras (TensorFlow backend): logits as they are, or log of the clipped probabilities,
        // into the fused sparse softmax cross-entropy.
        Operand<TFloat32> z = logits.isPresent() ? (Operand<TFloat32>) logits.get()
            : tf.math.log(clipped(tf, y));
        metrics.put("accuracy", accuracy(tf, y, labels));
        return new LossGraph(tf.withName("loss").math.mean(sparseCrossEntropy(tf, z, labels), allAxes(tf, labels)),
            Optional.of(name(labels)), metrics, logits.isPresent());
      }
      case CATEGORICAL_CROSSENTROPY: {
        Placeholder<TFloat32> labels = tf.withName("targets").placeholder(TFloat32.class);
        Optional<Output<?>> logits = fromLogits ? Optional.of(output) : beneath(output, "Softmax");
        Operand<TFloat32> ce;
        if (logits.isPresent()) {
          ce = tf.nn.softmaxCrossEntropyWithLogits((Operand<TFloat32>) logits.get(), labels).loss();
        } else {
          ce = tf.math.neg(tf.reduceSum(tf.math.mul(labels, tf.math.log(clipped(tf, normalised(tf, y)))),
              tf.constant(-1)));
        }
        metrics.put("accuracy", accuracy(tf, y, tf.math.argMax(labels, tf.constant(-1), TInt32.class)));
        return new LossGraph(tf.withName("loss").math.mean(ce, allAxes(tf, ce)), Optional.of(name(labels)), metrics,
            logits.isPresent());
      }
      case BINARY_CROSSENTROPY: {
        Placeholder<TFloat32> fed = tf.withName("targets").placeholder(TFloat32.class);
        // 0/1 targets of shape [batch] against a [batch, 1] output take its shape (see MSE).
        Operand<TFloat32> labels = tf.reshape(fed, tf.shape(y));
        Optional<Output<?>> logits = fromLogits ? Optional.of(output) : beneath(output, "Sigmoid");
        Operand<TFloat32> bce;
        if (logits.isPresent()) {
          // tf.nn.sigmoid_cross_entropy_with_logits: relu(z) - z * t + log1p(exp(-|z|))
          Operand<TFloat32> z = (Operand<TFloat32>) logits.get();
          Operand<TFloat32> zero = tf.zerosLike(z);
          Operand<org.tensorflow.types.TBool> positive = tf.math.greaterEqual(z, zero);
          Operand<TFloat32> relu = tf.select(positive, z, zero);
          Operand<TFloat32> negAbs = tf.select(positive, tf.math.neg(z), z);
          bce = tf.math.add(tf.math.sub(relu, tf.math.mul(z, labels)), tf.math.log1p(tf.math.exp(negAbs)));
        } else {
          Operand<TFloat32> p = clipped(tf, y);
          bce = tf.math.neg(tf.math.add(tf.math.mul(labels, tf.math.log(p)),
              tf.math.mul(tf.math.sub(tf.constant(1f), labels), tf.math.log(tf.math.sub(tf.constant(1f), p)))));
        }
        Operand<TFloat32> perSample = tf.math.mean(bce, tf.constant(-1));
        // A probability above 0.5 is class 1; a logit above 0 is the same.
        Operand<TFloat32> predicted = tf.dtypes.cast(tf.math.greater(y, tf.constant(fromLogits ? 0f : 0.5f)),
            TFloat32.class);
        metrics.put("accuracy", tf.math.mean(tf.dtypes.cast(tf.math.equal(predicted, labels), TFloat32.class),
            allAxes(tf, labels)));
        return new LossGraph(tf.withName("loss").math.mean(perSample, allAxes(tf, perSample)),
            Optional.of(name(fed)), metrics, logits.isPresent());
      }
      case MSE:
      case MAE:
      case HUBER: {
        Placeholder<TFloat32> labels = tf.withName("targets").placeholder(TFloat32.class);
        // Targets of shape [batch] against outputs [batch, 1] take the outputs' shape, as Keras
        // squeezes or expands them, rather than broadcasting to [batch, batch].
        Operand<TFloat32> error = tf.math.sub(y, tf.reshape(labels, tf.shape(y)));
        Operand<TFloat32> perElement;
        if (spec == LossSpec.MSE) {
          perElement = tf.math.square(error);
        } else if (spec == LossSpec.MAE) {
          perElement = tf.math.abs(error);
        } else {
          // keras.losses.Huber(delta=1): 0.5 e^2 where |e| <= 1, else |e| - 0.5.
          Operand<TFloat32> abs = tf.math.abs(error);
          perElement = tf.select(tf.math.lessEqual(abs, tf.constant(1f)),
              tf.math.mul(tf.constant(0.5f), tf.math.square(error)), tf.math.sub(abs, tf.constant(0.5f)));
        }
        if (spec != LossSpec.MSE) {
          metrics.put("mse", tf.math.mean(tf.math.square(error), allAxes(tf, error)));
        }
        if (spec != LossSpec.MAE) {
          metrics.put("mae", tf.math.mean(tf.math.abs(error), allAxes(tf, error)));
        }
        return new LossGraph(tf.withName("loss").math.mean(perElement, allAxes(tf, perElement)),
            Optional.of(name(labels)), metrics, false);
      }
      case CAUSAL_LM: {
        String ids = flat.inputs().get("token_ids");
        String mask = flat.inputs().get("padding_mask");
        if (ids == null || mask == null) {
          throw new IllegalArgumentException("the causal-LM loss needs inputs token_ids and padding_mask; signature "
              + flat.signature() + " has " + flat.inputs().keySet());
        }
        Operand<TNumber> tokens = (Operand<TNumber>) graph.output(ids);
        Operand<TNumber> padding = (Operand<TNumber>) graph.output(mask);
        // Position t predicts token t+1. The last position has no target: it gets token 0 with
        // weight 0, so the logits are used whole. Slicing them instead costs a logits-sized
        // StridedSliceGrad in the backward pass, a third of a small GPT-2's step.
        Operand<TNumber> next = tf.concat(List.of(tf.stridedSlice(tokens, Indices.all(), Indices.sliceFrom(1)),
            tf.zerosLike(tf.stridedSlice(tokens, Indices.all(), Indices.sliceTo(1)))), tf.constant(1));
        Operand<TNumber> nextMask = tf.concat(List.of(tf.stridedSlice(padding, Indices.all(), Indices.sliceFrom(1)),
            tf.zerosLike(tf.stridedSlice(padding, Indices.all(), Indices.sliceTo(1)))), tf.constant(1));
        Operand<TInt32> targets = tf.dtypes.cast(next, TInt32.class);
        Operand<TFloat32> weights = tf.dtypes.cast(nextMask, TFloat32.class);
        // The loss and the hits come from one softmax over the vocabulary, with a gradient of our
        // own: the fused kernel and ArgMax cost more than the rest of a small GPT-2's step.
        org.finetune.graph.MarkedGradients.CrossEntropy xent =
            org.finetune.graph.MarkedGradients.sparseCrossEntropy(tf, y, targets);
        Operand<TFloat32> ce = xent.loss();
        Operand<TFloat32> total = tf.math.maximum(tf.reduceSum(weights, allAxes(tf, weights)), tf.constant(1f));
        Operand<TFloat32> loss = tf.withName("loss").math.div(
            tf.reduceSum(tf.math.mul(ce, weights), allAxes(tf, ce)), total);
        metrics.put("perplexity", tf.math.exp(loss));
        Operand<TFloat32> hits = xent.hits();
        metrics.put("accuracy", tf.math.div(tf.reduceSum(tf.math.mul(hits, weights), allAxes(tf, hits)), total));
        return new LossGraph(loss, Optional.empty(), metrics, true);
      }
      default:
        throw new IllegalArgumentException("unsupported loss " + spec);
    }
  }

  /** The input of the op of type {@code op} that computes {@code output}, looking through Identity nodes. */
  static Optional<Output<?>> beneath(Output<?> output, String op) {
    Output<?> t = output;
    while (t.op().type().equals("Identity") && t.op() instanceof GraphOperation g && g.numInputs() > 0) {
      t = g.input(0);
    }
    if (!t.op().type().equals(op) || !(t.op() instanceof GraphOperation g)) {
      return Optional.empty();
    }
    return Optional.of(g.input(0));
  }

  /**
   * Per-position cross-entropy of integer labels with the logits' last axis, by the fused op Keras
   * uses (its gradient is registered in {@code CustomGradients}); any leading shape.
   */
  static Operand<TFloat32> sparseCrossEntropy(Ops tf, Operand<TFloat32> z, Operand<TInt32> labels) {
    Operand<TInt32> classes = tf.stridedSlice(tf.shape(z), Indices.at(-1));
    Operand<TFloat32> flatLogits = tf.reshape(z, tf.stack(java.util.List.of(tf.constant(-1), classes)));
    Operand<TInt32> flatLabels = tf.reshape(labels, tf.constant(new int[] {-1}));
    Operand<TFloat32> ce = tf.nn.sparseSoftmaxCrossEntropyWithLogits(flatLogits, flatLabels).loss();
    return tf.reshape(ce, tf.shape(labels));
  }

  private static Operand<TFloat32> normalised(Ops tf, Operand<TFloat32> p) {
    return tf.math.div(p, tf.reduceSum(p, tf.constant(-1), ReduceSum.keepDims(true)));
  }

  private static Operand<TFloat32> clipped(Ops tf, Operand<TFloat32> p) {
    return tf.clipByValue(p, tf.constant(EPSILON), tf.constant(1f - EPSILON));
  }

  private static Operand<TFloat32> accuracy(Ops tf, Operand<TFloat32> y, Operand<TInt32> labels) {
    Operand<TInt32> predicted = tf.math.argMax(y, tf.constant(-1), TInt32.class);
    Operand<TFloat32> hits = tf.dtypes.cast(tf.math.equal(predicted, labels), TFloat32.class);
    return tf.math.mean(hits, allAxes(tf, hits));
  }

  static Operand<TInt32> allAxes(Ops tf, Operand<?> x) {
    return tf.range(tf.constant(0), tf.rank(x), tf.constant(1));
  }

  private static String name(Placeholder<?> p) {
    return p.op().name() + ":0";
  }
}
