package org.finetune.train;

import java.util.List;

/**
 * One stage of training: which layer groups train, each with its learning-rate factor
 * (discriminative learning rates: lower layers learn more slowly).
 */
public record Stage(List<Group> groups) {
  /** Layers chosen by a selector, trained at {@code rateFactor} times the base learning rate. */
  public record Group(Selector selector, double rateFactor) {
    public Group {
      java.util.Objects.requireNonNull(selector, "selector");
      if (!(rateFactor > 0) || Double.isInfinite(rateFactor)) {
        throw new IllegalArgumentException("a learning-rate factor must be positive, got " + rateFactor);
      }
    }
  }

  public Stage {
    if (groups.isEmpty()) {
      throw new IllegalArgumentException("a stage needs at least one layer group");
    }
    groups = List.copyOf(groups);
  }

  /** A stage that trains the selected layers at the base learning rate. */
  public static Stage of(Selector... selectors) {
    return new Stage(java.util.Arrays.stream(selectors).map(s -> new Group(s, 1.0)).toList());
  }

  /** The selectors of every group. */
  public List<Selector> selectors() {
    return groups.stream().map(Group::selector).toList();
  }
}
