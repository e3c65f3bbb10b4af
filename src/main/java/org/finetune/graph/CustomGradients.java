package org.finetune.graph;

import java.util.ArrayList;
import java.util.List;
import org.tensorflow.Operand;
import org.tensorflow.TensorFlow;
import org.tensorflow.types.family.TType;

/**
 * Gradients that the runtime's C++ registry lacks and our losses and models need, registered
 * once per process with {@code TensorFlow.registerCustomGradient}. Each follows the gradient
 * TensorFlow's Python side defines for the op, so that training matches Keras.
 */
public final class CustomGradients {
  private static boolean registered;

  private CustomGradients() {}

  /** Registers every gradient here (idempotent; the registry is global to the process). */
  public static synchronized void ensureRegistered() {
    if (registered) {
      return;
    }
    // The fused loss Keras uses for sparse categorical cross-entropy. Its second output already
    // holds d loss_i / d logits_i (softmax minus one-hot); the incoming gradient scales each row.
    // Labels get no gradient.
    if (!GradientRegistry.hasRuntimeGradient("SparseSoftmaxCrossEntropyWithLogits")) {
      TensorFlow.registerCustomGradient("SparseSoftmaxCrossEntropyWithLogits", (tf, op, gradients) -> {
        Operand<TType> lossGrad = cast(gradients.get(0));
        Operand<TType> backprop = cast(op.output(1));
        List<Operand<?>> out = new ArrayList<>();
        out.add(tf.math.mul(tf.expandDims(lossGrad, tf.constant(-1)), backprop));
        // TF Java's adapter needs an operand for every input; the labels' is zeros and ends there.
        out.add(tf.zerosLike(cast(op.input(1))));
        return out;
      });
    }
    // Marked Prints stand for matrix products in the graph we train through (MarkedGradients).
    if (!GradientRegistry.hasRuntimeGradient("Print")) {
      TensorFlow.registerCustomGradient("Print", MarkedGradients::printGradient);
    }
    // Quantization-aware training (tfmot's QAT layers): the straight-through estimator TF Python
    // registers for fake quantization, through the runtime's own *Gradient ops.
    if (!GradientRegistry.hasRuntimeGradient("FakeQuantWithMinMaxArgs")) {
      TensorFlow.registerCustomGradient("FakeQuantWithMinMaxArgs", (tf, op, gradients) -> List.of(
          tf.quantization.fakeQuantWithMinMaxArgsGradient(cast(gradients.get(0)), cast(op.input(0)),
              org.tensorflow.op.quantization.FakeQuantWithMinMaxArgsGradient.min(op.attributes().getAttrFloat("min")),
              org.tensorflow.op.quantization.FakeQuantWithMinMaxArgsGradient.max(op.attributes().getAttrFloat("max")),
              org.tensorflow.op.quantization.FakeQuantWithMinMaxArgsGradient.numBits(op.attributes().getAttrInt("num_bits")),
              org.tensorflow.op.quantization.FakeQuantWithMinMaxArgsGradient.narrowRange(
                  op.attributes().getAttrBool("narrow_range")))));
    }
    if (!GradientRegistry.hasRuntimeGradient("FakeQuantWithMinMaxVars")) {
      TensorFlow.registerCustomGradient("FakeQuantWithMinMaxVars", (tf, op, gradients) -> {
        var g = tf.quantization.fakeQuantWithMinMaxVarsGradient(cast(gradients.get(0)), cast(op.input(0)),
            cast(op.input(1)), cast(op.input(2)),
            org.tensorflow.op.quantization.FakeQuantWithMinMaxVarsGradient.numBits(op.attributes().getAttrInt("num_bits")),
            org.tensorflow.op.quantization.FakeQuantWithMinMaxVarsGradient.narrowRange(
                op.attributes().getAttrBool("narrow_range")));
        return List.of(g.backpropsWrtInput(), g.backpropWrtMin(), g.backpropWrtMax());
      });
    }
    if (!GradientRegistry.hasRuntimeGradient("FakeQuantWithMinMaxVarsPerChannel")) {
      TensorFlow.registerCustomGradient("FakeQuantWithMinMaxVarsPerChannel", (tf, op, gradients) -> {
        var g = tf.quantization.fakeQuantWithMinMaxVarsPerChannelGradient(cast(gradients.get(0)), cast(op.input(0)),
            cast(op.input(1)), cast(op.input(2)),
            org.tensorflow.op.quantization.FakeQuantWithMinMaxVarsPerChannelGradient.numBits(
                op.attributes().getAttrInt("num_bits")),
            org.tensorflow.op.quantization.FakeQuantWithMinMaxVarsPerChannelGradient.narrowRange(
                op.attributes().getAttrBool("narrow_range")));
        return List.of(g.backpropsWrtInput(), g.backpropWrtMin(), g.backpropWrtMax());
      });
    }
    // Custom gradients saved with the model (tf.custom_gradient): only IdentityNs the flattener
    // marked with their saved function get here (SavedGradients).
    if (!GradientRegistry.hasRuntimeGradient("IdentityN")) {
      TensorFlow.registerCustomGradient("IdentityN", SavedGradients::identityNGradient);
    }
    registered = true;
  }

  @SuppressWarnings("unchecked")
  private static <T extends TType> Operand<T> cast(Operand<?> o) {
    return (Operand<T>) o;
  }

  /** For tests: the ops this class adds gradients for. */
  public static List<String> opTypes() {
    return List.of("SparseSoftmaxCrossEntropyWithLogits", "Print", "FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars",
        "FakeQuantWithMinMaxVarsPerChannel");
  }
}
