package org.finetune.train;

import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * Chooses layers of a model (by name, pattern, position or block) to train. Selectors are
 * resolved against the model's layers in forward order by {@link TrainableSet#resolve}.
 */
public sealed interface Selector {
  /** Every layer. */
  record All() implements Selector {}

  /** Exactly these layers. */
  record Layers(List<String> names) implements Selector {
    public Layers {
      names = List.copyOf(names);
    }
  }

  /** Layers whose name matches a glob ({@code *} any run, {@code ?} one character). */
  record Glob(String pattern) implements Selector {
    public Glob {
      Objects.requireNonNull(pattern, "pattern");
    }
  }

  /** Layers whose name matches a regular expression (whole name). */
  record Regex(Pattern pattern) implements Selector {
    public Regex {
      Objects.requireNonNull(pattern, "pattern");
    }
  }

  /** Layers at forward-order positions {@code from} to {@code to}, both included, 0-based. */
  record IndexRange(int from, int to) implements Selector {
    public IndexRange {
      if (from < 0 || to < from) {
        throw new IllegalArgumentException("index range must have 0 <= from <= to, got " + from + ".." + to);
      }
    }
  }

  /** Layers from the first up to and including {@code layer}. */
  record UpTo(String layer) implements Selector {
    public UpTo {
      Objects.requireNonNull(layer, "layer");
    }
  }

  /** The last {@code n} layers that have weights. */
  record LastN(int n) implements Selector {
    public LastN {
      if (n < 1) {
        throw new IllegalArgumentException("last N layers needs N >= 1, got " + n);
      }
    }
  }

  /**
   * A named block: layers whose name is {@code name} or starts with {@code name_} (VGG16's
   * {@code block5} holds {@code block5_conv1..3}), or, where no layer is named so, every layer
   * whose weights are used after the output of the layer called {@code name} in the forward pass
   * (InceptionV3's {@code mixed9} selects the layers above the {@code mixed9} concatenation).
   */
  record Block(String name) implements Selector {
    public Block {
      Objects.requireNonNull(name, "name");
    }
  }

  /**
   * The low-rank adapters ({@link LowRankSpec}) of every layer, and nothing else of those layers:
   * variables named {@code .../lora_<kernel>_a} and {@code _b}, as finetune and Keras's
   * {@code enable_lora} name them. Selects variables, not layers, so it cannot be negated.
   */
  record Adapters() implements Selector {}

  /** Every layer the inner selector does not choose (freezing what it names). */
  record Not(Selector inner) implements Selector {
    public Not {
      Objects.requireNonNull(inner, "inner");
    }
  }

  /** Parses the command line's selector syntax; see {@link SelectorSyntax}. */
  static Selector parse(String text) {
    return SelectorSyntax.parse(text);
  }

  /** This selector in the command line's syntax. */
  default String text() {
    return SelectorSyntax.format(this);
  }
}
