package org.finetune.graph;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.proto.NodeDef;

/**
 * The final classifier of a flat graph, found by walking back from an output: the activation
 * (softmax or sigmoid, when there is one), the classifier's kernel op (a {@code MatMul} or 1x1
 * convolution on a weight) and the tensor it classifies; and, walking on from there, the global
 * pooling before it, whose input is where a model's spatial features end.
 *
 * @param activation the activation op's type ({@code Softmax}, {@code Sigmoid}), empty for logits
 * @param classifierLayer the layer that owns the classifier's kernel
 * @param input the tensor the classifier takes (local name)
 * @param unpooled the tensor a global average or max pooling between the features and the
 *     classifier takes (local name), empty when there is none
 */
public record ClassifierTop(Optional<String> activation, String classifierLayer, String input,
    Optional<String> unpooled) {
  private static final Set<String> PASS = Set.of("Identity", "Reshape", "Squeeze", "ExpandDims", "Cast", "StopGradient",
      "IdentityN");
  private static final Set<String> KERNEL_OPS = Set.of("MatMul", "BatchMatMulV2", "Conv2D", "Einsum");
  private static final Pattern SUFFIX = Pattern.compile("(.*)_\\d+");

  /**
   * The classifier computing {@code output} (a local tensor name of {@code graph}); empty when
   * the walk back from it meets no op that multiplies by a weight before anything else.
   *
   * @param readLayers weight read node (local name) to the layer owning the weight
   */
  public static Optional<ClassifierTop> find(GraphDef graph, String output, Map<String, String> readLayers) {
    Map<String, NodeDef> nodes = new HashMap<>();
    graph.getNodeList().forEach(n -> nodes.put(n.getName(), n));
    String tensor = output;
    Optional<String> activation = Optional.empty();
    for (int guard = 0; guard < 64; guard++) {
      NodeDef n = nodes.get(TensorNames.nodeOf(tensor));
      if (n == null) {
        return Optional.empty();
      }
      String op = n.getOp();
      if (op.equals("Softmax") || op.equals("Sigmoid")) {
        if (activation.isPresent()) {
          return Optional.empty();
        }
        activation = Optional.of(op);
        tensor = n.getInput(0);
      } else if (PASS.contains(op) || op.equals("BiasAdd")) {
        tensor = n.getInput(0);
      } else if (op.equals("AddV2") || op.equals("Add")) {
        Optional<String> data = activationInput(n, nodes, readLayers);
        if (data.isEmpty()) {
          return Optional.empty();
        }
        tensor = data.get();
      } else if (KERNEL_OPS.contains(op)) {
        for (int i = 0; i < 2; i++) {
          Optional<String> owner = weightOwner(n.getInput(1 - i), nodes, readLayers);
          if (owner.isPresent()) {
            String in = n.getInput(i);
            return Optional.of(new ClassifierTop(activation, owner.get(), in, unpooled(in, nodes)));
          }
        }
        return Optional.empty();
      } else {
        return Optional.empty();
      }
    }
    return Optional.empty();
  }

  /**
   * The layer whose output is {@code tensor}: the name scopes of its op, innermost first (Keras 3
   * traced names end in {@code _<n>}), the first whose layer outputs exactly that tensor.
   */
  public static Optional<String> layerOutputting(GraphDef graph, String tensor, Set<String> inputs,
      java.util.Collection<String> outputs, OpDefs opDefs) {
    String full = tensor.contains(":") ? tensor : tensor + ":0";
    String[] segments = TensorNames.nodeOf(tensor).split("/");
    for (int i = segments.length - 2; i >= 0; i--) {
      List<String> names = new ArrayList<>();
      Matcher m = SUFFIX.matcher(segments[i]);
      if (m.matches()) {
        names.add(m.group(1));
      }
      names.add(segments[i]);
      for (String name : names) {
        try {
          if (LayerScopes.outputOf(graph, name, inputs, outputs, opDefs).equals(full)) {
            return Optional.of(name);
          }
        } catch (IllegalArgumentException e) {
          // not this scope
        }
      }
    }
    return Optional.empty();
  }

  /**
   * The input of the nearest global pooling ({@code Mean} or {@code Max} over axes 1 and 2) met
   * walking back from {@code tensor} over at most 48 ops (a top may have a convolution and an
   * activation between its pooling and the classifier, as MobileNetV3's does).
   */
  private static Optional<String> unpooled(String tensor, Map<String, NodeDef> nodes) {
    java.util.ArrayDeque<String> queue = new java.util.ArrayDeque<>(List.of(TensorNames.nodeOf(tensor)));
    Set<String> seen = new java.util.HashSet<>(queue);
    while (!queue.isEmpty() && seen.size() <= 48) {
      NodeDef n = nodes.get(queue.poll());
      if (n == null) {
        continue;
      }
      if ((n.getOp().equals("Mean") || n.getOp().equals("Max")) && spatial(nodes.get(TensorNames.nodeOf(n.getInput(1))))) {
        return Optional.of(n.getInput(0));
      }
      for (String in : n.getInputList()) {
        if (!in.startsWith("^") && seen.add(TensorNames.nodeOf(in))) {
          queue.add(TensorNames.nodeOf(in));
        }
      }
    }
    return Optional.empty();
  }

  /** Whether {@code axes} is a constant [1, 2] (or [-3, -2]): height and width of NHWC. */
  private static boolean spatial(NodeDef axes) {
    if (axes == null || !axes.getOp().equals("Const") || !axes.containsAttr("value")) {
      return false;
    }
    org.tensorflow.proto.TensorProto t = axes.getAttrOrThrow("value").getTensor();
    List<Long> v = new ArrayList<>();
    t.getIntValList().forEach(i -> v.add((long) i));
    t.getInt64ValList().forEach(v::add);
    if (v.isEmpty() && !t.getTensorContent().isEmpty()) {
      java.nio.ByteBuffer b = t.getTensorContent().asReadOnlyByteBuffer().order(java.nio.ByteOrder.LITTLE_ENDIAN);
      boolean wide = t.getDtype() == org.tensorflow.proto.DataType.DT_INT64;
      while (b.remaining() >= (wide ? 8 : 4)) {
        v.add(wide ? b.getLong() : b.getInt());
      }
    }
    return v.equals(List.of(1L, 2L)) || v.equals(List.of(-3L, -2L));
  }

  /** The input of an addition that carries activations (the other is a weight). */
  private static Optional<String> activationInput(NodeDef add, Map<String, NodeDef> nodes, Map<String, String> reads) {
    boolean first = weightOwner(add.getInput(0), nodes, reads).isPresent();
    boolean second = weightOwner(add.getInput(1), nodes, reads).isPresent();
    if (first == second) {
      return Optional.empty();
    }
    return Optional.of(add.getInput(first ? 1 : 0));
  }

  /** The layer owning the weight {@code tensor} reads, through identities and casts. */
  private static Optional<String> weightOwner(String tensor, Map<String, NodeDef> nodes, Map<String, String> reads) {
    String t = tensor;
    for (int guard = 0; guard < 8; guard++) {
      String node = TensorNames.nodeOf(t);
      if (reads.containsKey(node)) {
        return Optional.of(reads.get(node));
      }
      NodeDef n = nodes.get(node);
      if (n == null || !PASS.contains(n.getOp()) || n.getInputCount() == 0) {
        return Optional.empty();
      }
      t = n.getInput(0);
    }
    return Optional.empty();
  }
}
