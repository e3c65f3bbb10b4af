package org.finetune.savedmodel;

import java.util.List;
import java.util.Objects;

/**
 * An op on the path from trainable variables to a signature's outputs for which the runtime has
 * no gradient: {@code Graph.addGradients} cannot reach the layers behind it.
 *
 * @param op the op type (e.g. {@code ResourceGather})
 * @param function the function that holds it ({@code ""} for the top-level graph)
 * @param node the node's name in that function
 * @param layers the layers whose trainable variables feed it, in forward order
 */
public record GradientGap(String op, String function, String node, List<String> layers) {
  public GradientGap {
    Objects.requireNonNull(op, "op");
    Objects.requireNonNull(function, "function");
    Objects.requireNonNull(node, "node");
    layers = List.copyOf(layers);
  }
}
