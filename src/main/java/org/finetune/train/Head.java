package org.finetune.train;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import org.finetune.model.FlatSignature;
import org.finetune.savedmodel.VariableInfo;
import org.tensorflow.Graph;
import org.tensorflow.Operand;
import org.tensorflow.Output;
import org.tensorflow.Session;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.ndarray.StdArrays;
import org.tensorflow.op.Op;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.PlaceholderWithDefault;
import org.tensorflow.op.core.ReduceSum;
import org.tensorflow.op.core.VarHandleOp;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.family.TNumber;

/**
 * A {@link HeadSpec} built in the model's graph on top of a tensor of the flat signature: its
 * variables (resource variables, initialised once when built), its logits and its output.
 */
final class Head {
  /** A variable the head added, with its handle node and its read tensor. */
  record Variable(VariableInfo info, String handle, String read) {}

  private final HeadSpec spec;
  private final Output<TFloat32> logits;
  private final Output<TFloat32> output;
  private final List<Variable> variables;
  private final String dropoutRate;
  private final String dropoutSeed;

  private Head(HeadSpec spec, Output<TFloat32> logits, Output<TFloat32> output, List<Variable> variables,
      String dropoutRate, String dropoutSeed) {
    this.spec = spec;
    this.logits = logits;
    this.output = output;
    this.variables = List.copyOf(variables);
    this.dropoutRate = dropoutRate;
    this.dropoutSeed = dropoutSeed;
  }

  HeadSpec spec() {
    return spec;
  }

  /** The pre-activation output (what the loss uses for softmax and sigmoid heads). */
  Output<TFloat32> logits() {
    return logits;
  }

  /** The head's output, after its activation. */
  Output<TFloat32> output() {
    return output;
  }

  /** The head's variables in forward order (hidden kernel and bias, then output kernel and bias). */
  List<Variable> variables() {
    return variables;
  }

  /** The scalar placeholder of the dropout rate (0 unless fed: training steps feed the spec's rate). */
  Optional<String> dropoutRate() {
    return spec.dropout() > 0 ? Optional.of(dropoutRate) : Optional.empty();
  }

  /**
   * The int64[2] placeholder seeding the dropout masks; training feeds (spec seed, step), so a
   * step's mask depends on nothing but the step and a resumed run draws the same masks.
   */
  String dropoutSeed() {
    return dropoutSeed;
  }

  /** Dropout's rate and seed tensors. */
  record Dropout(Operand<TFloat32> rate, Operand<org.tensorflow.types.TInt64> seed) {}

  /**
   * Makes a head variable: returns the tensor that reads it. {@code initial} computes its start
   * value (called at most once; an exported graph, restored from a checkpoint, never calls it).
   */
  interface VariableMaker {
    Operand<TFloat32> make(Ops scope, String layer, String name, Shape shape, java.util.function.Supplier<TFloat32> initial);
  }

  /** The head's forward pass: its logits and output. */
  record Forward(Operand<TFloat32> logits, Operand<TFloat32> output) {}

  /**
   * Builds the head on {@code features} and assigns its initial weights.
   *
   * @param padding the signature's padding mask ({@code [batch, time]}), used to average 3-D features
   */
  static Head build(Graph graph, Session session, Ops tf, HeadSpec spec, Output<?> features,
      Optional<Output<?>> padding) {
    List<Variable> variables = new ArrayList<>();
    List<Op> init = new ArrayList<>();
    VariableMaker maker = (scope, layer, name, shape, initial) -> {
      String opName = scope.scope().makeOpName(name);
      VarHandleOp handle = scope.withName(name).varHandleOp(TFloat32.class, shape, VarHandleOp.sharedName(opName));
      try (TFloat32 value = initial.get()) {
        init.add(scope.withName(name + "_init").assignVariableOp(handle, scope.constantOf(value)));
      }
      Operand<TFloat32> read = scope.withName(name + "_read").readVariableOp(handle, TFloat32.class);
      List<Long> dims = new ArrayList<>();
      for (long d : shape.asArray()) {
        dims.add(d);
      }
      variables.add(new Variable(new VariableInfo(layer + "/" + name, layer, dims, "float32", true,
          handle.op().name(), VariableInfo.Kind.WEIGHT), handle.op().name(), read.asOutput().op().name() + ":0"));
      return read;
    };
    PlaceholderWithDefault<TFloat32> rate = tf.withName("dropout_rate").placeholderWithDefault(tf.constant(0f),
        Shape.scalar());
    PlaceholderWithDefault<org.tensorflow.types.TInt64> seed = tf.withName("dropout_seed").placeholderWithDefault(
        tf.constant(new long[] {spec.seed(), 0}), Shape.of(2));
    Forward f = forward(tf, spec, features, padding, Optional.of(new Dropout(rate, seed)), maker);
    Session.Runner runner = session.runner();
    init.forEach(runner::addTarget);
    runner.run();
    return new Head(spec, f.logits().asOutput(), f.output().asOutput(), variables, rate.op().name() + ":0",
        seed.op().name() + ":0");
  }

  /**
   * The head's ops on {@code features}: pooling, the optional hidden layer (with dropout at
   * {@code dropoutRate} when given), the output layer and its activation. Kernels start
   * Glorot-uniform from the spec's seed, biases at zero.
   */
  @SuppressWarnings("unchecked")
  static Forward forward(Ops tf, HeadSpec spec, Output<?> features, Optional<Output<?>> padding,
      Optional<Dropout> dropoutRate, VariableMaker maker) {
    if (features.dataType() != org.tensorflow.proto.DataType.DT_FLOAT) {
      throw new IllegalArgumentException("a head needs float32 features; " + features.op().name() + " gives "
          + features.dataType());
    }
    Operand<TFloat32> x = pool(tf, spec, (Output<TFloat32>) features, padding);
    long width = x.shape().size(1);
    if (x.shape().numDimensions() != 2 || width < 1) {
      throw new IllegalArgumentException("the head's features have shape " + features.shape()
          + "; their last dimension must be known");
    }
    SplittableRandom random = new SplittableRandom(spec.seed());
    if (spec.frames() > 0) {
      // One row per frame, clip after clip: [clips * frames, width] -> [clips, frames, width].
      Operand<TFloat32> clips = tf.withName("frames").reshape(x, tf.constant(new long[] {-1, spec.frames(), width}));
      if (spec.temporal() == HeadSpec.Temporal.AVERAGE) {
        x = tf.withName("temporal_pooled").math.mean(clips, tf.constant(1));
      } else {
        x = temporalConv(tf, clips, width, random, maker);
        width = HeadSpec.TEMPORAL_CHANNELS;
      }
    }
    if (spec.hiddenUnits() > 0) {
      x = tf.nn.relu(dense(tf, x, width, spec.hiddenUnits(), HeadSpec.HIDDEN, random, maker));
      if (spec.dropout() > 0 && dropoutRate.isPresent()) {
        x = dropout(tf, x, dropoutRate.get());
      }
      width = spec.hiddenUnits();
    }
    Operand<TFloat32> z = tf.withName("logits").identity(
        dense(tf, x, width, spec.classes(), HeadSpec.OUTPUT, random, maker));
    Operand<TFloat32> y = switch (spec.activation()) {
      case SOFTMAX -> tf.withName("probabilities").nn.softmax(z);
      case SIGMOID -> tf.withName("probabilities").math.sigmoid(z);
      case LINEAR -> tf.withName("output").identity(z);
    };
    return new Forward(z, y);
  }

  @SuppressWarnings("unchecked")
  private static Operand<TFloat32> pool(Ops tf, HeadSpec spec, Output<TFloat32> features, Optional<Output<?>> padding) {
    int rank = features.shape().numDimensions();
    if (rank < 0) {
      throw new IllegalArgumentException("the head's features (" + features.op().name() + ") have unknown rank");
    }
    if (rank == 2) {
      return features;
    }
    if (spec.pooling() == HeadSpec.Pooling.NONE) {
      throw new IllegalArgumentException("the head's features have shape " + features.shape()
          + "; pooling NONE needs 2-D features (use AVERAGE)");
    }
    if (rank == 4) {
      // Keras's GlobalAveragePooling2D (channels last): the mean over height and width.
      return tf.withName("pooled").math.mean(features, tf.constant(new int[] {1, 2}));
    }
    if (rank == 3) {
      if (padding.isPresent() && padding.get().shape().numDimensions() == 2) {
        // Average over the positions the mask keeps: sum(h * m) / max(sum(m), 1).
        Operand<TFloat32> m = tf.dtypes.cast((Operand<? extends TNumber>) padding.get(), TFloat32.class);
        Operand<TFloat32> sum = tf.reduceSum(tf.math.mul(features, tf.expandDims(m, tf.constant(-1))),
            tf.constant(1));
        Operand<TFloat32> count = tf.math.maximum(tf.reduceSum(m, tf.constant(1), ReduceSum.keepDims(true)),
            tf.constant(1f));
        return tf.withName("pooled").math.div(sum, count);
      }
      return tf.withName("pooled").math.mean(features, tf.constant(1));
    }
    throw new IllegalArgumentException("the head's features have shape " + features.shape()
        + "; a head pools features of rank 2, 3 or 4");
  }

  /**
   * Keras's Conv1D over the frames ({@code [clips, frames, width]}, valid padding, kernel
   * {@code [span, width, channels]} Glorot-uniform, bias zero), ReLU, then the mean over the
   * positions left: {@code [clips, channels]}.
   */
  private static Operand<TFloat32> temporalConv(Ops tf, Operand<TFloat32> clips, long width, SplittableRandom random,
      VariableMaker maker) {
    String layer = HeadSpec.TEMPORAL;
    Ops scope = tf.withSubScope(layer);
    int span = HeadSpec.TEMPORAL_KERNEL;
    int channels = HeadSpec.TEMPORAL_CHANNELS;
    double limit = Math.sqrt(6.0 / (span * width + span * channels));
    Operand<TFloat32> k = maker.make(scope, layer, "kernel", Shape.of(span, width, channels), () -> {
      float[][][] kernel = new float[span][(int) width][channels];
      for (float[][] tap : kernel) {
        for (float[] row : tap) {
          for (int j = 0; j < row.length; j++) {
            row[j] = (float) (random.nextDouble() * 2 * limit - limit);
          }
        }
      }
      return TFloat32.tensorOf(StdArrays.ndCopyOf(kernel));
    });
    Operand<TFloat32> b = maker.make(scope, layer, "bias", Shape.of(channels), () -> TFloat32.vectorOf(new float[channels]));
    // As a 2-D convolution of height 1: input [clips, 1, frames, width], kernel [1, span, width, channels].
    Operand<TFloat32> image = scope.expandDims(clips, scope.constant(1));
    Operand<TFloat32> kernel2d = scope.expandDims(k, scope.constant(0));
    Operand<TFloat32> conv = scope.nn.conv2d(image, kernel2d, List.of(1L, 1L, 1L, 1L), "VALID");
    Operand<TFloat32> activated = scope.nn.relu(scope.nn.biasAdd(conv, b));
    return tf.withName("temporal_pooled").math.mean(activated, tf.constant(new int[] {1, 2}));
  }

  /** Keras's Dense: {@code x @ kernel + bias}, kernel Glorot-uniform, bias zero. */
  private static Operand<TFloat32> dense(Ops tf, Operand<TFloat32> x, long in, long out, String layer,
      SplittableRandom random, VariableMaker maker) {
    Ops scope = tf.withSubScope(layer);
    double limit = Math.sqrt(6.0 / (in + out));
    Operand<TFloat32> k = maker.make(scope, layer, "kernel", Shape.of(in, out), () -> {
      float[][] kernel = new float[(int) in][(int) out];
      for (float[] row : kernel) {
        for (int j = 0; j < row.length; j++) {
          row[j] = (float) (random.nextDouble() * 2 * limit - limit);
        }
      }
      return TFloat32.tensorOf(StdArrays.ndCopyOf(kernel));
    });
    Operand<TFloat32> b = maker.make(scope, layer, "bias", Shape.of(out), () -> TFloat32.vectorOf(new float[(int) out]));
    return scope.math.add(scope.linalg.matMul(x, k), b);
  }

  /** Inverted dropout, as Keras does it in training: keep with probability 1 - rate, scale by 1 / (1 - rate). */
  private static Operand<TFloat32> dropout(Ops tf, Operand<TFloat32> x, Dropout d) {
    Operand<TFloat32> u = tf.random.statelessRandomUniform(tf.shape(x), d.seed());
    Operand<TFloat32> keep = tf.dtypes.cast(tf.math.greaterEqual(u, d.rate()), TFloat32.class);
    Operand<TFloat32> scale = tf.math.div(tf.constant(1f), tf.math.sub(tf.constant(1f), d.rate()));
    return tf.withName("dropout").math.mul(tf.math.mul(x, scale), keep);
  }
}
