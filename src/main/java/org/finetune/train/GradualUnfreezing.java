package org.finetune.train;

import java.util.ArrayList;
import java.util.List;

/**
 * ULMFiT-style gradual unfreezing (Howard and Ruder, 2018): train the top layer group first, then
 * add the next group down at each stage, with discriminative learning rates that divide by
 * {@code factor} per group going down (ULMFiT's 2.6 by default).
 */
public final class GradualUnfreezing {
  /** ULMFiT's factor between the learning rates of neighbouring layer groups. */
  public static final double DEFAULT_FACTOR = 2.6;

  private GradualUnfreezing() {}

  /**
   * Stages for {@code groups} listed from the top (output side) down: stage {@code k} trains
   * groups {@code 0..k}, group {@code i} at {@code factor^-i} times the base rate.
   */
  public static List<Stage> fromTop(List<Selector> groups, double factor) {
    if (groups.isEmpty()) {
      throw new IllegalArgumentException("gradual unfreezing needs at least one layer group");
    }
    if (!(factor >= 1)) {
      throw new IllegalArgumentException("the discriminative factor must be >= 1, got " + factor);
    }
    List<Stage> stages = new ArrayList<>();
    for (int k = 0; k < groups.size(); k++) {
      List<Stage.Group> active = new ArrayList<>();
      for (int i = 0; i <= k; i++) {
        active.add(new Stage.Group(groups.get(i), Math.pow(factor, -i)));
      }
      stages.add(new Stage(active));
    }
    return stages;
  }

  /** The stage to use in {@code epoch} (0-based) when a new group unfreezes every {@code everyEpochs}. */
  public static int stageForEpoch(int epoch, int everyEpochs, int stageCount) {
    if (everyEpochs < 1) {
      throw new IllegalArgumentException("unfreeze every N epochs needs N >= 1, got " + everyEpochs);
    }
    return Math.min(epoch / everyEpochs, stageCount - 1);
  }
}
