package org.finetune.graph;

import java.util.ArrayList;
import java.util.List;
import org.tensorflow.Graph;
import org.tensorflow.GraphOperation;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.TensorProto;
import org.tensorflow.proto.TensorShapeProto;

/**
 * Rewrites grouped convolutions (a {@code Conv2D} whose filter has fewer input channels than its
 * input: Keras's {@code Conv2D(groups=g)}, ConvNeXt's depthwise convolutions, RegNet's group
 * convolutions) as ops TensorFlow's CPU kernels run and differentiate. Keras runs them through
 * XLA ({@code jit_compile}), because the runtime's own {@code Conv2D} kernel refuses groups; the
 * flat graph inlines that function, so without this the step fails.
 *
 * <p>With input channels {@code C}, filter {@code [h, w, k, O]}, {@code g = C / k} groups and
 * {@code m = O / g} outputs per group, the output is a depthwise convolution with filter
 * {@code [h, w, C, m]} (the filter's groups moved before its in-group channels), whose {@code k}
 * partial products per group are summed: the same sums, so the same numbers up to the order of
 * float additions. Where {@code k} is 1 (depthwise) no sum is needed.
 */
public final class GroupedConvolutions {
  private GroupedConvolutions() {}

  /**
   * {@code graph} with its grouped convolutions rewritten, each keeping its node name for its
   * result; the same graph when it has none. Shapes come from importing the graph into a scratch
   * graph (the runtime's shape inference), so static channel counts are needed.
   */
  public static GraphDef rewrite(GraphDef graph) {
    if (graph.getNodeList().stream().noneMatch(n -> n.getOp().equals("Conv2D"))) {
      return graph;
    }
    List<NodeDef> grouped = new ArrayList<>();
    List<long[]> shapes = new ArrayList<>();
    try (Graph scratch = new Graph()) {
      CustomGradients.ensureRegistered();
      scratch.importGraphDef(graph);
      for (NodeDef n : graph.getNodeList()) {
        if (!n.getOp().equals("Conv2D") || !channelsLast(n)) {
          continue;
        }
        GraphOperation op = scratch.operation(n.getName());
        Shape in = op.input(0).shape();
        Shape filter = op.input(1).shape();
        Shape out = op.output(0).shape();
        if (in.numDimensions() != 4 || filter.numDimensions() != 4 || out.numDimensions() != 4 || in.get(3) < 0
            || filter.get(2) < 0 || in.get(3) == filter.get(2)) {
          continue;
        }
        grouped.add(n);
        shapes.add(new long[] {in.get(3), filter.get(0), filter.get(1), filter.get(2), filter.get(3), out.get(1),
            out.get(2)});
      }
    }
    if (grouped.isEmpty()) {
      return graph;
    }
    GraphDef.Builder b = graph.toBuilder();
    for (int i = 0; i < grouped.size(); i++) {
      NodeDef n = grouped.get(i);
      long[] s = shapes.get(i);
      int index = indexOf(b, n.getName());
      List<NodeDef> nodes = replacement(n, s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
      b.setNode(index, nodes.get(nodes.size() - 1));
      nodes.subList(0, nodes.size() - 1).forEach(b::addNode);
    }
    return b.build();
  }

  private static boolean channelsLast(NodeDef n) {
    return !n.containsAttr("data_format") || n.getAttrOrThrow("data_format").getS().toStringUtf8().equals("NHWC");
  }

  private static int indexOf(GraphDef.Builder b, String name) {
    for (int i = 0; i < b.getNodeCount(); i++) {
      if (b.getNode(i).getName().equals(name)) {
        return i;
      }
    }
    throw new IllegalStateException("no node " + name);
  }

  /** The nodes computing {@code conv}'s output, the last one named as {@code conv}. */
  static List<NodeDef> replacement(NodeDef conv, long c, long h, long w, long k, long o, long outH, long outW) {
    long g = c / k;
    long m = o / g;
    if (k > 1 && (outH < 0 || outW < 0)) {
      throw new IllegalArgumentException("grouped convolution " + conv.getName() + " has an output of unknown height"
          + " or width");
    }
    if (g * k != c || g * m != o) {
      throw new IllegalArgumentException("convolution " + conv.getName() + ": input channels " + c + " and filter ["
          + h + ", " + w + ", " + k + ", " + o + "] make no whole number of groups");
    }
    String base = conv.getName() + "/finetune_grouped";
    String device = conv.getDevice();
    AttrValue t = conv.getAttrOrThrow("T");
    List<NodeDef> nodes = new ArrayList<>();
    String filter = conv.getInput(1);
    String x = conv.getInput(0);
    // Filter [h, w, k, g*m] -> [h, w, k, g, m] -> [h, w, g, k, m] -> [h, w, C, m].
    nodes.add(constant(base + "/filter_groups", new long[] {h, w, k, g, m}, device));
    nodes.add(op("Reshape", base + "/filter_split", device, t, filter, base + "/filter_groups").build());
    nodes.add(constant(base + "/filter_order", new long[] {0, 1, 3, 2, 4}, device));
    nodes.add(op("Transpose", base + "/filter_moved", device, t, base + "/filter_split", base + "/filter_order").build());
    nodes.add(constant(base + "/filter_shape", new long[] {h, w, c, m}, device));
    nodes.add(op("Reshape", base + "/filter", device, t, base + "/filter_moved", base + "/filter_shape").build());
    NodeDef.Builder depthwise = op("DepthwiseConv2dNative", k == 1 ? conv.getName() : base + "/depthwise", device, t, x,
        base + "/filter");
    for (String attr : List.of("strides", "padding", "dilations", "data_format", "explicit_paddings")) {
      if (conv.containsAttr(attr)) {
        depthwise.putAttr(attr, conv.getAttrOrThrow(attr));
      }
    }
    if (k == 1) {
      // The depthwise output's channel c*m + j is group c's output j: already Conv2D's order.
      nodes.add(withControlInputs(depthwise, conv));
      return nodes;
    }
    nodes.add(depthwise.build());
    nodes.addAll(sums(conv, base + "/depthwise", k, g, m, outH, outW));
    return nodes;
  }

  /**
   * The nodes that turn the depthwise output {@code [n, H, W, g*k*m]} into the grouped
   * convolution's: reshaped to {@code [n, H, W, g, k, m]}, summed over k, reshaped to
   * {@code [n, H, W, g*m]}; the last is named as {@code conv}.
   */
  private static List<NodeDef> sums(NodeDef conv, String depthwise, long k, long g, long m, long outH, long outW) {
    String base = conv.getName() + "/finetune_grouped";
    String device = conv.getDevice();
    AttrValue t = conv.getAttrOrThrow("T");
    List<NodeDef> nodes = new ArrayList<>();
    nodes.add(constant(base + "/partial_shape", new long[] {-1, outH, outW, g, k, m}, device));
    nodes.add(op("Reshape", base + "/partials", device, t, depthwise, base + "/partial_shape").build());
    // int32 axes: the runtime's Sum gradient adds them to an int32 rank.
    nodes.add(constant(base + "/group_axis", new long[] {4}, DataType.DT_INT32, device));
    nodes.add(op("Sum", base + "/sums", device, t, base + "/partials", base + "/group_axis")
        .putAttr("keep_dims", AttrValue.newBuilder().setB(false).build())
        .putAttr("Tidx", AttrValue.newBuilder().setType(DataType.DT_INT32).build()).build());
    nodes.add(constant(base + "/out_shape", new long[] {-1, outH, outW, g * m}, device));
    nodes.add(withControlInputs(op("Reshape", conv.getName(), device, t, base + "/sums", base + "/out_shape"), conv));
    return nodes;
  }

  /** {@code node} with the control inputs of {@code conv}, which it takes the place of. */
  private static NodeDef withControlInputs(NodeDef.Builder node, NodeDef conv) {
    conv.getInputList().stream().filter(in -> in.startsWith("^")).forEach(node::addInput);
    return node.build();
  }

  private static NodeDef.Builder op(String type, String name, String device, AttrValue t, String... inputs) {
    NodeDef.Builder n = NodeDef.newBuilder().setOp(type).setName(name).setDevice(device).putAttr("T", t);
    for (String in : inputs) {
      n.addInput(in);
    }
    if (type.equals("Reshape")) {
      n.putAttr("Tshape", AttrValue.newBuilder().setType(DataType.DT_INT64).build());
    } else if (type.equals("Transpose")) {
      n.putAttr("Tperm", AttrValue.newBuilder().setType(DataType.DT_INT64).build());
    }
    return n;
  }

  private static NodeDef constant(String name, long[] values, String device) {
    return constant(name, values, DataType.DT_INT64, device);
  }

  private static NodeDef constant(String name, long[] values, DataType type, String device) {
    TensorProto.Builder t = TensorProto.newBuilder().setDtype(type)
        .setTensorShape(TensorShapeProto.newBuilder().addDim(TensorShapeProto.Dim.newBuilder().setSize(values.length)));
    for (long v : values) {
      if (type == DataType.DT_INT32) {
        t.addIntVal(Math.toIntExact(v));
      } else {
        t.addInt64Val(v);
      }
    }
    return NodeDef.newBuilder().setOp("Const").setName(name).setDevice(device)
        .putAttr("dtype", AttrValue.newBuilder().setType(type).build())
        .putAttr("value", AttrValue.newBuilder().setTensor(t).build()).build();
  }
}
