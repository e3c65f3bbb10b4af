package org.finetune.train;

import java.util.Objects;
import java.util.Optional;

/**
 * A new classification head, put on a layer's output (or on the trained signature output when
 * {@link #at()} is empty): pooling of the features, an optional hidden Dense + ReLU + Dropout,
 * then Dense({@link #classes()}) with the output activation. Kernels start Glorot-uniform and
 * biases at zero, as Keras initialises Dense; {@link #seed()} makes the start reproducible.
 *
 * <p>Its layers are named {@code head_hidden} and {@code head_output} (variables
 * {@code head_hidden/kernel}, ...), so the selector {@code head} picks the new head alone.
 * Layers of the model after the cut no longer reach the loss and are left out of training.
 *
 * @param at the layer whose output feeds the head; empty: the signature's output
 * @param pooling how features of rank 3 or 4 become one vector per example
 * @param hiddenUnits width of the hidden Dense layer; 0 for none
 * @param dropout dropout rate after the hidden layer, in training steps only (0 for none)
 * @param classes number of outputs
 * @param activation the output activation
 * @param seed seeds the initial weights and the dropout masks
 * @param frames 0 for images; for clips, the frames per clip: the model runs on every frame (its
 *     input holds {@code [clips * frames, ...]}) and the head sees {@code [clips, frames, features]}
 * @param temporal how a clip's frame features become one vector (ignored when {@code frames} is 0)
 */
public record HeadSpec(Optional<String> at, Pooling pooling, int hiddenUnits, double dropout, int classes,
    Activation activation, long seed, int frames, Temporal temporal) {
  /** The name of the hidden layer a head adds. */
  public static final String HIDDEN = "head_hidden";
  /** The name of the output layer a head adds. */
  public static final String OUTPUT = "head_output";
  /** Default seed of a head's initial weights. */
  public static final long DEFAULT_SEED = 1234;

  /** How features become one vector per example. */
  public enum Pooling {
    /**
     * Average over the spatial axes of 4-D features (Keras's GlobalAveragePooling2D) and over the
     * time axis of 3-D ones (weighted by the signature's {@code padding_mask} input when it has
     * one); 2-D features as they are.
     */
    AVERAGE,
    /** Features must already be 2-D. */
    NONE
  }

  /** The name of the temporal layer a head over clips adds ({@link Temporal#CONV}). */
  public static final String TEMPORAL = "head_temporal";
  /** Output channels of the temporal convolution. */
  public static final int TEMPORAL_CHANNELS = 64;
  /** Frames the temporal convolution spans. */
  public static final int TEMPORAL_KERNEL = 3;

  /** How the features of a clip's frames become one vector. */
  public enum Temporal {
    /** The mean over frames: blind to their order (the baseline). */
    AVERAGE,
    /**
     * A 1-D convolution over time (Keras's Conv1D: {@value #TEMPORAL_CHANNELS} filters spanning
     * {@value #TEMPORAL_KERNEL} frames, valid padding) with ReLU, then the mean over the remaining
     * positions: it sees the order of frames, so motion.
     */
    CONV
  }

  /** The output activation. */
  public enum Activation {
    SOFTMAX("softmax"), SIGMOID("sigmoid"), LINEAR("linear");

    private final String kerasName;

    Activation(String kerasName) {
      this.kerasName = kerasName;
    }

    public String kerasName() {
      return kerasName;
    }
  }

  public HeadSpec {
    Objects.requireNonNull(at, "at");
    Objects.requireNonNull(pooling, "pooling");
    Objects.requireNonNull(activation, "activation");
    if (classes < 1) {
      throw new IllegalArgumentException("a head needs at least one output, got " + classes);
    }
    if (hiddenUnits < 0) {
      throw new IllegalArgumentException("hidden units must be >= 0, got " + hiddenUnits);
    }
    if (!(dropout >= 0 && dropout < 1)) {
      throw new IllegalArgumentException("the dropout rate must be in [0, 1), got " + dropout);
    }
    if (dropout > 0 && hiddenUnits == 0) {
      throw new IllegalArgumentException("dropout applies after the hidden layer; give hidden units too");
    }
    Objects.requireNonNull(temporal, "temporal");
    if (frames < 0 || frames == 1) {
      throw new IllegalArgumentException("a head over clips needs at least 2 frames per clip, got " + frames);
    }
    if (frames > 0 && temporal == Temporal.CONV && frames < TEMPORAL_KERNEL) {
      throw new IllegalArgumentException("the temporal convolution spans " + TEMPORAL_KERNEL + " frames; clips have "
          + frames);
    }
  }

  /** An image head (no frames). */
  public HeadSpec(Optional<String> at, Pooling pooling, int hiddenUnits, double dropout, int classes,
      Activation activation, long seed) {
    this(at, pooling, hiddenUnits, dropout, classes, activation, seed, 0, Temporal.AVERAGE);
  }

  /** A softmax classifier over {@code classes} on the signature's output: average pooling, no hidden layer. */
  public static HeadSpec classifier(int classes) {
    return new HeadSpec(Optional.empty(), Pooling.AVERAGE, 0, 0, classes, Activation.SOFTMAX, DEFAULT_SEED);
  }

  /** The same head on the output of layer {@code layer} (the model above it is cut away). */
  public HeadSpec at(String layer) {
    return new HeadSpec(Optional.of(layer), pooling, hiddenUnits, dropout, classes, activation, seed, frames, temporal);
  }

  /** The same head with a hidden Dense({@code units}) + ReLU, then dropout at {@code rate}. */
  public HeadSpec hidden(int units, double rate) {
    return new HeadSpec(at, pooling, units, rate, classes, activation, seed, frames, temporal);
  }

  public HeadSpec pooling(Pooling p) {
    return new HeadSpec(at, p, hiddenUnits, dropout, classes, activation, seed, frames, temporal);
  }

  public HeadSpec activation(Activation a) {
    return new HeadSpec(at, pooling, hiddenUnits, dropout, classes, a, seed, frames, temporal);
  }

  public HeadSpec seed(long s) {
    return new HeadSpec(at, pooling, hiddenUnits, dropout, classes, activation, s, frames, temporal);
  }

  /** The same head over clips of {@code n} frames, joining them as {@code t} says. */
  public HeadSpec clips(int n, Temporal t) {
    return new HeadSpec(at, pooling, hiddenUnits, dropout, classes, activation, seed, n, t);
  }
}
