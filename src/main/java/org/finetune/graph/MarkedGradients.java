package org.finetune.graph;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.GraphOperation;
import org.tensorflow.Operand;
import org.tensorflow.Output;
import org.tensorflow.op.Ops;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TInt32;
import org.tensorflow.types.family.TType;

/**
 * Faster backward passes than the runtime's C++ gradients give, for the two ops that dominate a
 * language model's step, without changing the forward values.
 *
 * <p>The mechanism: a value {@code v} that should get a gradient of our own is consumed as
 * {@code Print(StopGradient(v), a, b, ...)}, a pass-through that never logs ({@code first_n} 0)
 * and carries the attribute {@value #MARK} naming the rule. The gradient registered for
 * {@code Print} (in {@link CustomGradients}) applies that rule to the extra inputs; the stop keeps
 * the C++ gradient of {@code v} from being built at all. An unmarked {@code Print} gets
 * TensorFlow's Python gradient for it: the incoming gradient passes to the first input.
 * (Gradient functions cannot ask the graph for shapes: it is locked while they run. What a rule
 * needs to know is written into the marker's attributes.)
 *
 * <p>The rules:
 * <ul>
 *   <li><b>Matrix products</b> ({@link #forTraining}). The C++ gradient of {@code BatchMatMulV2}
 *   builds {@code BatchMatMulV3} products, which TensorFlow 2.18's oneDNN rewrite leaves on the
 *   slower Eigen kernel, and when a batched input meets a matrix (a Dense layer on a sequence,
 *   GPT-2's tied output projection) it forms the weight gradient as one product per batch element
 *   summed afterwards. The rule uses {@code BatchMatMulV2} products (which oneDNN takes) and, for
 *   a matrix operand, one {@code MatMul} over the flattened batch. On the small GPT-2 the C++
 *   products took more time than the whole forward pass.
 *   <li><b>Sparse softmax cross-entropy</b> ({@link #sparseCrossEntropy}). The fused
 *   {@code SparseSoftmaxCrossEntropyWithLogits} kernel is several times slower than oneDNN's
 *   softmax on GPT-2's 50,257 classes; the loss is built from that softmax instead and its
 *   gradient is {@code softmax - onehot}, scattered in place.
 * </ul>
 *
 * <p>Only the copy of the flat graph imported for training carries marks; exports are written from
 * the clean flat graph, so Python never sees them.
 */
public final class MarkedGradients {
  /** The attribute that marks a {@code Print}; its value names the rule: {@value #PRODUCT} or {@value #CROSS_ENTROPY}. */
  public static final String MARK = "_finetune_gradient_of";
  static final String PRODUCT = "BatchMatMulV2";
  static final String CROSS_ENTROPY = "SparseSoftmaxCrossEntropy";
  static final String ADJ_X = "_finetune_adj_x";
  static final String ADJ_Y = "_finetune_adj_y";
  /** Set when the second operand is known to be a matrix (a variable or constant of rank 2, maybe transposed or cast). */
  static final String MATRIX_Y = "_finetune_matrix_y";
  static final String PRODUCT_SUFFIX = "/finetune_product";

  private static final Set<DataType> REAL = Set.of(DataType.DT_FLOAT, DataType.DT_DOUBLE, DataType.DT_HALF,
      DataType.DT_BFLOAT16);

  private MarkedGradients() {}

  /** {@code graph} with every real-valued {@code BatchMatMulV2} (or same-type V3) marked as above. */
  public static GraphDef forTraining(GraphDef graph) {
    Set<String> names = new HashSet<>();
    java.util.Map<String, NodeDef> byName = new java.util.HashMap<>();
    graph.getNodeList().forEach(n -> {
      names.add(n.getName());
      byName.put(n.getName(), n);
    });
    GraphDef.Builder out = graph.toBuilder().clearNode();
    for (NodeDef node : graph.getNodeList()) {
      DataType t = productType(node);
      String product = node.getName() + PRODUCT_SUFFIX;
      String stop = node.getName() + "/finetune_stop";
      if (t == null || names.contains(product) || names.contains(stop) || node.getInputCount() < 2) {
        out.addNode(node);
        continue;
      }
      out.addNode(node.toBuilder().setName(product));
      out.addNode(NodeDef.newBuilder().setName(stop).setOp("StopGradient").setDevice(node.getDevice())
          .addInput(product).putAttr("T", type(t)));
      NodeDef.Builder print = NodeDef.newBuilder().setName(node.getName()).setOp("Print").setDevice(node.getDevice())
          .addInput(stop).addInput(node.getInput(0)).addInput(node.getInput(1))
          .putAttr("T", type(t))
          .putAttr("U", AttrValue.newBuilder().setList(AttrValue.ListValue.newBuilder().addType(t).addType(t)).build())
          .putAttr("first_n", AttrValue.newBuilder().setI(0).build())
          .putAttr("summarize", AttrValue.newBuilder().setI(0).build())
          .putAttr("message", AttrValue.newBuilder().setS(com.google.protobuf.ByteString.EMPTY).build())
          .putAttr(MARK, AttrValue.newBuilder().setS(com.google.protobuf.ByteString.copyFromUtf8(PRODUCT)).build())
          .putAttr(ADJ_X, AttrValue.newBuilder().setB(flag(node, "adj_x")).build())
          .putAttr(ADJ_Y, AttrValue.newBuilder().setB(flag(node, "adj_y")).build())
          .putAttr(MATRIX_Y, AttrValue.newBuilder().setB(staticRank(byName, node.getInput(1)) == 2).build());
      for (int i = 2; i < node.getInputCount(); i++) {
        print.addInput(node.getInput(i)); // control inputs
      }
      out.addNode(print);
    }
    return out.build();
  }

  private static DataType productType(NodeDef node) {
    if (node.getOp().equals("BatchMatMulV2")) {
      DataType t = node.getAttrMap().get("T").getType();
      return REAL.contains(t) ? t : null;
    }
    if (node.getOp().equals("BatchMatMulV3")) {
      DataType a = node.getAttrMap().get("Ta").getType();
      DataType b = node.getAttrMap().get("Tb").getType();
      DataType o = node.getAttrMap().get("Tout").getType();
      return a == b && b == o && REAL.contains(a) ? a : null;
    }
    return null;
  }

  /**
   * The rank of {@code tensor} when the graph alone shows it: a constant, or a variable's read
   * (its handle's shape), seen through Identity, Cast and Transpose; -1 otherwise. (Shapes cannot
   * be asked for while gradients are being built: the graph is locked then.)
   */
  static int staticRank(java.util.Map<String, NodeDef> nodes, String tensor) {
    NodeDef n = nodes.get(TensorNames.nodeOf(tensor));
    for (int hops = 0; n != null && hops < 16; hops++) {
      switch (n.getOp()) {
        case "Identity", "Cast", "Transpose", "ReadVariableOp" -> n = nodes.get(TensorNames.nodeOf(n.getInput(0)));
        case "VarHandleOp", "VariableV2" -> {
          AttrValue shape = n.getAttrMap().get("shape");
          return shape == null || shape.getShape().getUnknownRank() ? -1 : shape.getShape().getDimCount();
        }
        case "Const" -> {
          return n.getAttrMap().get("value").getTensor().getTensorShape().getDimCount();
        }
        default -> {
          return -1;
        }
      }
    }
    return -1;
  }

  private static boolean flag(NodeDef node, String name) {
    AttrValue v = node.getAttrMap().get(name);
    return v != null && v.getB();
  }

  private static AttrValue type(DataType t) {
    return AttrValue.newBuilder().setType(t).build();
  }

  /** The gradient registered for {@code Print}: its rule's for a marked one, else pass-through. */
  static List<Operand<?>> printGradient(Ops tf, GraphOperation op, List<Output<?>> gradients) {
    Operand<TType> g = cast(gradients.get(0));
    String rule = rule(op);
    if (rule.equals(PRODUCT)) {
      return productGradient(tf, op, g);
    }
    if (rule.equals(CROSS_ENTROPY)) {
      return crossEntropyGradient(tf, op, cast(g));
    }
    List<Operand<?>> out = new ArrayList<>();
    out.add(g);
    for (int i = 1; i < op.numInputs(); i++) {
      out.add(tf.zerosLike(cast(op.input(i))));
    }
    return out;
  }

  private static List<Operand<?>> productGradient(Ops tf, GraphOperation op, Operand<TType> g) {
    List<Operand<?>> out = new ArrayList<>();
    boolean adjX = op.attributes().getAttrBool(ADJ_X);
    boolean adjY = op.attributes().getAttrBool(ADJ_Y);
    Operand<TType> x = cast(op.input(1));
    Operand<TType> y = cast(op.input(2));
    // The product's own input gets nothing: the stop in front of it ends the path there.
    out.add(tf.zerosLike(cast(op.input(0))));
    Operand<TType> dx;
    Operand<TType> dy;
    if (!adjX && !adjY) {
      dx = product(tf, g, y, false, true);
      dy = product(tf, x, g, true, false);
    } else if (!adjX) {
      dx = product(tf, g, y, false, false);
      dy = product(tf, g, x, true, false);
    } else if (!adjY) {
      dx = product(tf, y, g, false, true);
      dy = product(tf, x, g, false, false);
    } else {
      dx = product(tf, y, g, true, true);
      dy = product(tf, g, x, true, true);
    }
    if (!adjX && op.attributes().getAttrBool(MATRIX_Y)) {
      // x [..., M, K] against a matrix y: the weight gradient is one product over the flattened
      // batch, not one per batch element summed afterwards (for a plain matrix x, the same product).
      Operand<TType> x2 = tf.reshape(x, tf.stack(List.of(tf.constant(-1), lastDim(tf, x))));
      Operand<TType> g2 = tf.reshape(g, tf.stack(List.of(tf.constant(-1), lastDim(tf, g))));
      dy = adjY
          ? cast(tf.linalg.matMul(g2, x2, org.tensorflow.op.linalg.MatMul.transposeA(true)))
          : cast(tf.linalg.matMul(x2, g2, org.tensorflow.op.linalg.MatMul.transposeA(true)));
      out.add(reduceBroadcast(tf, dx, x, y, 0));
      out.add(dy);
      return out;
    }
    out.add(reduceBroadcast(tf, dx, x, y, 0));
    out.add(reduceBroadcast(tf, dy, x, y, 1));
    return out;
  }

  private static String rule(GraphOperation op) {
    try {
      return op.attributes().getAttrString(MARK);
    } catch (RuntimeException noSuchAttribute) {
      return "";
    }
  }

  /** Per-position loss and hit (1 where the target has the largest logit) of {@link #sparseCrossEntropy}. */
  public record CrossEntropy(Operand<TFloat32> loss, Operand<TFloat32> hits) {}

  /**
   * Sparse softmax cross-entropy of integer {@code labels} [...] against {@code logits} [..., C],
   * position by position, with a gradient (for the logits only) of {@code softmax - onehot}.
   *
   * <p>With {@code s = softmax(z)} (oneDNN) and {@code m = max(z)}, the largest probability is
   * {@code 1 / sum(exp(z - m))}, never below {@code 1/C}, so {@code logsumexp(z) = m - log(max(s))}
   * without underflow, and the loss is {@code logsumexp(z) - z[label]}. The hit test
   * {@code z[label] >= m} comes free of the same maximum (ArgMax would cost a pass of its own;
   * a tie counts as a hit, where ArgMax would pick the first of the tied classes). A label outside
   * {@code [0, C)} fails the gather with the offending index.
   */
  public static CrossEntropy sparseCrossEntropy(Ops tf, Operand<TFloat32> logits, Operand<TInt32> labels) {
    Operand<TInt32> classes = tf.stridedSlice(tf.shape(logits), org.tensorflow.ndarray.index.Indices.at(-1));
    Operand<TFloat32> z = tf.reshape(logits, tf.stack(List.of(tf.constant(-1), classes)));
    Operand<TInt32> t = tf.reshape(labels, tf.constant(new int[] {-1}));
    Operand<TFloat32> s = tf.nn.softmax(z);
    Operand<TFloat32> m = tf.max(z, tf.constant(-1));
    Operand<TFloat32> target = tf.gather(z, tf.expandDims(t, tf.constant(-1)), tf.constant(1),
        org.tensorflow.op.core.Gather.batchDims(1L));
    target = tf.reshape(target, tf.constant(new int[] {-1}));
    Operand<TFloat32> loss = tf.math.sub(tf.math.sub(m, tf.math.log(tf.max(s, tf.constant(-1)))), target);
    Operand<TFloat32> hits = tf.dtypes.cast(tf.math.greaterEqual(target, m), TFloat32.class);
    var builder = tf.scope().opBuilder("Print", "cross_entropy");
    builder.addInput(tf.stopGradient(loss).asOutput());
    builder.addInputList(new Output<?>[] {z.asOutput(), t.asOutput(), tf.stopGradient(s).asOutput()});
    builder.setAttr("first_n", 0L);
    builder.setAttr("summarize", 0L);
    builder.setAttr("message", "");
    builder.setAttr(MARK, CROSS_ENTROPY);
    Operand<TFloat32> marked = cast(builder.build().output(0));
    return new CrossEntropy(tf.reshape(marked, tf.shape(labels)), tf.reshape(hits, tf.shape(labels)));
  }

  /** d loss_i / d z_i = g_i (softmax(z_i) - onehot(label_i)): scale the softmax, subtract g at each label. */
  private static List<Operand<?>> crossEntropyGradient(Ops tf, GraphOperation op, Operand<TFloat32> g) {
    Operand<TInt32> t = cast(op.input(2));
    Operand<TFloat32> s = cast(op.input(3));
    Operand<TInt32> rows = tf.range(tf.constant(0), tf.reshape(tf.shape(t), tf.constant(new int[0])), tf.constant(1));
    Operand<TInt32> at = tf.stack(List.of(rows, t), org.tensorflow.op.core.Stack.axis(1L));
    Operand<TFloat32> dz = tf.tensorScatterNdSub(tf.math.mul(s, tf.expandDims(g, tf.constant(-1))), at, g);
    List<Operand<?>> out = new ArrayList<>();
    out.add(tf.zerosLike(cast(op.input(0))));
    out.add(dz);
    out.add(tf.zerosLike(t));
    out.add(tf.zerosLike(s));
    return out;
  }

  private static Operand<TType> product(Ops tf, Operand<TType> a, Operand<TType> b, boolean adjA, boolean adjB) {
    var builder = tf.scope().opBuilder("BatchMatMulV2", "BatchMatMulV2");
    builder.addInput(a.asOutput());
    builder.addInput(b.asOutput());
    builder.setAttr("adj_x", adjA);
    builder.setAttr("adj_y", adjB);
    return cast(builder.build().output(0));
  }

  private static Operand<TInt32> lastDim(Ops tf, Operand<?> t) {
    return tf.reshape(tf.stridedSlice(tf.shape(t), org.tensorflow.ndarray.index.Indices.sliceFrom(-1)),
        tf.constant(new int[0]));
  }

  /** Sums {@code grad} over the batch dimensions its operand ({@code which}: 0 for x, 1 for y) was broadcast along. */
  private static Operand<TType> reduceBroadcast(Ops tf, Operand<TType> grad, Operand<TType> x, Operand<TType> y,
      int which) {
    Operand<TInt32> sx = tf.shape(x);
    Operand<TInt32> sy = tf.shape(y);
    Operand<TInt32> bx = batchShape(tf, sx);
    Operand<TInt32> by = batchShape(tf, sy);
    var args = tf.broadcastGradientArgs(bx, by);
    Operand<TInt32> axes = which == 0 ? args.r0() : args.r1();
    return tf.reshape(tf.reduceSum(grad, axes), which == 0 ? sx : sy);
  }

  private static Operand<TInt32> batchShape(Ops tf, Operand<TInt32> shape) {
    return tf.stridedSlice(shape, org.tensorflow.ndarray.index.Indices.sliceTo(-2));
  }

  @SuppressWarnings("unchecked")
  private static <T extends TType> Operand<T> cast(Operand<?> o) {
    return (Operand<T>) o;
  }
}
