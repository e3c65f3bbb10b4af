package org.finetune.train;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;
import org.finetune.hint.BadSettingException;
import org.finetune.hint.Setting;
import org.finetune.savedmodel.VariableInfo;

/**
 * Low-rank adapters (LoRA): each target kernel {@code W} is read as {@code W + (alpha / rank) A B}
 * while it trains, {@code W} stays frozen, and only {@code A} (the kernel's shape with its last
 * dimension replaced by {@code rank}) and {@code B} ({@code [rank, last dimension]}) learn. As
 * Keras's {@code enable_lora}: {@code A} starts He-uniform, {@code B} at zero, so the model starts
 * exactly where it was; Keras 3.8 has no alpha and scales by 1, which is {@code alpha = rank}.
 * An export folds {@code (alpha / rank) A B} into {@code W}: the same architecture as the base.
 *
 * @param rank the adapters' inner dimension, at least 1
 * @param alpha the update's scale is {@code alpha / rank}
 * @param targets globs ({@code *} any run of characters) over variable names choosing the kernels
 *     to adapt; empty: keras-hub's choice where the model has such kernels (attention query and
 *     value: {@link #KERAS_HUB_TARGETS}), else every trainable 2-D {@code kernel} (Dense layers)
 * @param seed seeds the start of every {@code A}
 */
public record LowRankSpec(int rank, double alpha, List<String> targets, long seed) {
  /** The kernels keras-hub's {@code Backbone.enable_lora} adapts (its target layer names, as variable globs). */
  public static final List<String> KERAS_HUB_TARGETS = List.of("*/query/kernel", "*/value/kernel",
      "*/query_dense/kernel", "*/value_dense/kernel");
  public static final long DEFAULT_SEED = 1337;

  public LowRankSpec {
    if (rank < 1) {
      throw new IllegalArgumentException("the adapters' rank must be >= 1, got " + rank);
    }
    if (!(alpha > 0) || Double.isInfinite(alpha)) {
      throw new IllegalArgumentException("the adapters' alpha must be positive, got " + alpha);
    }
    targets = List.copyOf(targets);
    for (String t : targets) {
      Objects.requireNonNull(t, "target");
      if (t.isBlank()) {
        throw new IllegalArgumentException("an adapter target is empty");
      }
    }
  }

  /** Rank {@code rank}, alpha = rank (Keras's scale of 1), the default targets. */
  public static LowRankSpec of(int rank) {
    return new LowRankSpec(rank, rank, List.of(), DEFAULT_SEED);
  }

  public LowRankSpec withAlpha(double a) {
    return new LowRankSpec(rank, a, targets, seed);
  }

  public LowRankSpec withTargets(List<String> globs) {
    return new LowRankSpec(rank, alpha, globs, seed);
  }

  public LowRankSpec withSeed(long s) {
    return new LowRankSpec(rank, alpha, targets, s);
  }

  /** The update's scale, {@code alpha / rank}. */
  public double scale() {
    return alpha / rank;
  }

  /** The kernels chosen, in the model's order, and how they were chosen (one line). */
  public record Choice(List<VariableInfo> kernels, String how) {}

  /**
   * The kernels this spec adapts among {@code variables}.
   *
   * @throws BadSettingException when a glob matches no variable, a match is not a float kernel of
   *     rank 2 or more, or the default finds no kernel; the message lists the candidates
   */
  public Choice choose(List<VariableInfo> variables) {
    List<VariableInfo> candidates = variables.stream().filter(LowRankSpec::adaptable).toList();
    List<String> names = candidates.stream().map(VariableInfo::name).toList();
    if (!targets.isEmpty()) {
      List<VariableInfo> out = new ArrayList<>();
      for (String glob : targets) {
        Pattern p = Pattern.compile(TrainableSet.globToRegex(glob));
        List<VariableInfo> matched = variables.stream().filter(v -> p.matcher(v.name()).matches()).toList();
        if (matched.isEmpty()) {
          throw new BadSettingException("the adapter target '" + glob + "' matches no variable; kernels that can take"
              + " adapters: " + abbreviate(names), Setting.ADAPTERS, "name some of them (* matches any run of characters)");
        }
        for (VariableInfo v : matched) {
          if (!adaptable(v)) {
            throw new BadSettingException("the adapter target '" + glob + "' matches " + v.name() + " " + v.shape()
                + " (" + v.dtype() + (v.trainable() ? "" : ", not trainable") + "), which is no trainable float kernel of"
                + " rank 2 or more; kernels that can take adapters: " + abbreviate(names), Setting.ADAPTERS,
                "narrow the pattern");
          }
          if (!out.contains(v)) {
            out.add(v);
          }
        }
      }
      List<VariableInfo> ordered = candidates.stream().filter(out::contains).toList();
      return new Choice(ordered, "the kernels matching " + String.join(", ", targets));
    }
    List<Pattern> hub = KERAS_HUB_TARGETS.stream().map(g -> Pattern.compile(TrainableSet.globToRegex(g))).toList();
    List<VariableInfo> attention = candidates.stream()
        .filter(v -> hub.stream().anyMatch(p -> p.matcher(v.name()).matches())).toList();
    if (!attention.isEmpty()) {
      return new Choice(attention, "the attention query and value kernels, as keras-hub's enable_lora");
    }
    List<VariableInfo> dense = candidates.stream()
        .filter(v -> v.shape().size() == 2 && v.name().endsWith("/kernel")).toList();
    if (dense.isEmpty()) {
      throw new BadSettingException("the model has no attention query/value kernel and no 2-D Dense kernel for"
          + " adapters by default; kernels that can take adapters: " + abbreviate(names), Setting.ADAPTERS,
          "name the targets");
    }
    return new Choice(dense, "every 2-D kernel (Dense layers), as the model has no attention query/value kernel");
  }

  private static boolean adaptable(VariableInfo v) {
    return v.trainable() && v.weight() && v.dtype().equals("float32") && v.shape().size() >= 2
        && v.shape().stream().allMatch(d -> d > 0);
  }

  private static String abbreviate(List<String> names) {
    if (names.isEmpty()) {
      return "none";
    }
    return names.size() <= 8 ? String.join(", ", names)
        : String.join(", ", names.subList(0, 6)) + ", ... (" + names.size() + " in all)";
  }
}
