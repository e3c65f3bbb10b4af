package org.finetune.train;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.finetune.model.FlatSignature;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.Graph;
import org.tensorflow.Operand;
import org.tensorflow.Output;
import org.tensorflow.op.Ops;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.TensorProto;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TInt64;
import org.tensorflow.types.family.TNumber;

/**
 * Variables read only through row gathers (an Embedding's table), whose gradient Keras holds as
 * rows ({@code tf.IndexedSlices}, one row per looked-up id) rather than a dense tensor. The sum of
 * the rows is the dense gradient, so most updates agree; Adam's second moment does not: Keras
 * squares each row before the rows of a repeated id are summed, so for an id seen k times in a
 * batch its {@code v} grows by the sum of k squares where the dense gradient's square is the
 * square of the sum. To give Keras's updates, Adam takes {@link #squares} for such variables.
 *
 * @param gathers the gather ops' outputs (imported tensor names), one per lookup
 * @param indices the ids each gather looks up (imported tensor names), in the same order
 */
record GatheredRows(List<String> gathers, List<String> indices) {
  /**
   * How {@code localRead} (a variable's shared read, by its name in the flat graph) is used:
   * present when every consumer is a {@code GatherV2} on axis 0 taking it as the table.
   */
  static Optional<GatheredRows> of(FlatSignature flat, Map<String, List<NodeDef>> consumers, String localRead) {
    List<NodeDef> uses = consumers.getOrDefault(TensorNames.nodeOf(localRead), List.of());
    if (uses.isEmpty()) {
      return Optional.empty();
    }
    Map<String, NodeDef> byName = new HashMap<>();
    List<String> gathers = new ArrayList<>();
    List<String> indices = new ArrayList<>();
    for (NodeDef n : uses) {
      if (!n.getOp().equals("GatherV2") || n.getInputCount() < 3 || !n.getInput(0).equals(localRead)
          || batchDims(n) != 0 || !isZero(flat, n.getInput(2), byName)) {
        return Optional.empty();
      }
      gathers.add(flat.imported(n.getName() + ":0"));
      indices.add(flat.imported(n.getInput(1)));
    }
    return Optional.of(new GatheredRows(gathers, indices));
  }

  /** Consumers of every node of the flat graph, by the consumed node's name. */
  static Map<String, List<NodeDef>> consumers(FlatSignature flat) {
    Map<String, List<NodeDef>> out = new HashMap<>();
    for (NodeDef n : flat.graphDef().getNodeList()) {
      for (String in : n.getInputList()) {
        if (!in.startsWith("^")) {
          out.computeIfAbsent(TensorNames.nodeOf(in), k -> new ArrayList<>()).add(n);
        }
      }
    }
    return out;
  }

  /**
   * Keras's per-row second-moment term: the squares of every looked-up row's gradient, summed per
   * id, in the table's shape.
   *
   * @param rowGradients the loss's gradient with respect to each gather's output, in order
   * @param table a read of the variable (for its shape)
   */
  @SuppressWarnings("unchecked")
  Operand<TFloat32> squares(Ops tf, Graph graph, List<Operand<TFloat32>> rowGradients, Operand<TFloat32> table) {
    Operand<TInt64> shape = tf.shape(table, TInt64.class);
    Operand<TInt64> rows = tf.reshape(tf.slice(shape, tf.constant(new long[] {0}), tf.constant(new long[] {1})),
        tf.constant(new long[0]));
    Operand<TInt64> rowShape = tf.concat(List.of(tf.constant(new long[] {-1}),
        tf.slice(shape, tf.constant(new long[] {1}), tf.constant(new long[] {-1}))), tf.constant(0));
    Operand<TFloat32> total = null;
    for (int i = 0; i < gathers.size(); i++) {
      Operand<TFloat32> g = tf.reshape(rowGradients.get(i), rowShape);
      Operand<TInt64> ids = tf.dtypes.cast(tf.reshape((Output<? extends TNumber>) graph.output(indices.get(i)),
          tf.constant(new long[] {-1})), TInt64.class);
      Operand<TFloat32> sum = tf.math.unsortedSegmentSum(tf.math.square(g), ids, rows);
      total = total == null ? sum : tf.math.add(total, sum);
    }
    return total;
  }

  private static long batchDims(NodeDef n) {
    AttrValue a = n.getAttrMap().get("batch_dims");
    return a == null ? 0 : a.getI();
  }

  /** Whether {@code tensor} is a constant scalar 0 (a gather's axis). */
  private static boolean isZero(FlatSignature flat, String tensor, Map<String, NodeDef> cache) {
    String node = TensorNames.nodeOf(tensor);
    NodeDef n = cache.computeIfAbsent(node, k -> flat.graphDef().getNodeList().stream()
        .filter(d -> d.getName().equals(k)).findFirst().orElse(null));
    if (n == null || !n.getOp().equals("Const") || !n.getAttrMap().containsKey("value")) {
      return false;
    }
    TensorProto t = n.getAttrMap().get("value").getTensor();
    if (t.getIntValCount() == 1) {
      return t.getIntVal(0) == 0;
    }
    if (t.getInt64ValCount() == 1) {
      return t.getInt64Val(0) == 0;
    }
    byte[] content = t.getTensorContent().toByteArray();
    for (byte b : content) {
      if (b != 0) {
        return false;
      }
    }
    return content.length == 4 || content.length == 8;
  }
}
