package org.finetune.graph;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.TensorProto;
import org.tensorflow.proto.TensorShapeProto;

/**
 * Puts low-rank adapters into a flat graph: for each target variable, whose one shared read the
 * flat graph's ops consume, two new resource variables {@code A} and {@code B} and the tensor
 * {@code read + scale * (A @ B)}, which every consumer of the read then consumes instead. The
 * read itself stays, so the target's value and gradient are still there to be asked for.
 * {@code A @ B} is a {@code MatMul} for a 2-D kernel and a broadcasting {@code BatchMatMulV2}
 * ({@code A} of shape {@code [..., m, rank]}) for a higher one, as Keras's {@code ops.matmul}.
 */
public final class LowRankAdapters {
  private LowRankAdapters() {}

  /**
   * One kernel to adapt.
   *
   * @param read the flat graph's shared read of the kernel (local tensor name)
   * @param shape the kernel's shape (rank 2 or more, every dimension known)
   * @param sharedName names the adapters' resources: {@code <sharedName>/lora_kernel_a} and {@code _b}
   */
  public record Target(String read, long[] shape, int rank, double scale, String sharedName) {}

  /** An adapter pair as placed: handle nodes and read tensors (local names) and their shapes. */
  public record Placed(String handleA, String readA, long[] shapeA, String handleB, String readB, long[] shapeB,
      String adapted) {}

  /** The graph with the adapters, and each target's adapters by its read. */
  public record Result(GraphDef graphDef, Map<String, Placed> adapters) {}

  public static Result rewrite(GraphDef flat, List<Target> targets) {
    Map<String, String> replace = new HashMap<>();
    Map<String, Placed> placed = new LinkedHashMap<>();
    List<NodeDef> added = new ArrayList<>();
    java.util.Set<String> names = new java.util.HashSet<>();
    flat.getNodeList().forEach(n -> names.add(n.getName()));
    for (Target t : targets) {
      String readNode = TensorNames.nodeOf(t.read());
      String base = unique(names, readNode + "/lora");
      long[] shapeA = t.shape().clone();
      shapeA[shapeA.length - 1] = t.rank();
      long[] shapeB = {t.rank(), t.shape()[t.shape().length - 1]};
      String readA = variable(added, names, base + "/lora_kernel_a", t.sharedName() + "/lora_kernel_a", shapeA);
      String readB = variable(added, names, base + "/lora_kernel_b", t.sharedName() + "/lora_kernel_b", shapeB);
      NodeDef.Builder product = NodeDef.newBuilder().setName(base + "/product").addInput(readA).addInput(readB)
          .putAttr("T", type());
      if (t.shape().length == 2) {
        product.setOp("MatMul").putAttr("transpose_a", flag(false)).putAttr("transpose_b", flag(false));
      } else {
        product.setOp("BatchMatMulV2").putAttr("adj_x", flag(false)).putAttr("adj_y", flag(false));
      }
      added.add(product.build());
      String delta = base + "/product";
      if (t.scale() != 1.0) {
        added.add(NodeDef.newBuilder().setName(base + "/scale").setOp("Const").putAttr("dtype", type())
            .putAttr("value", AttrValue.newBuilder().setTensor(TensorProto.newBuilder().setDtype(DataType.DT_FLOAT)
                .setTensorShape(TensorShapeProto.getDefaultInstance()).addFloatVal((float) t.scale())).build())
            .build());
        added.add(NodeDef.newBuilder().setName(base + "/scaled").setOp("Mul").addInput(base + "/scale")
            .addInput(delta).putAttr("T", type()).build());
        delta = base + "/scaled";
      }
      String adapted = base + "/adapted";
      added.add(NodeDef.newBuilder().setName(adapted).setOp("AddV2").addInput(t.read()).addInput(delta)
          .putAttr("T", type()).build());
      replace.put(t.read(), adapted);
      if (t.read().endsWith(":0")) {
        replace.put(readNode, adapted);
      }
      placed.put(t.read(), new Placed(base + "/lora_kernel_a", readA + ":0", shapeA, base + "/lora_kernel_b",
          readB + ":0", shapeB, adapted + ":0"));
    }
    GraphDef.Builder out = flat.toBuilder().clearNode();
    for (NodeDef n : flat.getNodeList()) {
      boolean changed = false;
      NodeDef.Builder b = n.toBuilder().clearInput();
      for (String in : n.getInputList()) {
        String to = in.startsWith("^") ? null : replace.get(in);
        b.addInput(to == null ? in : to);
        changed |= to != null;
      }
      out.addNode(changed ? b.build() : n);
    }
    added.forEach(out::addNode);
    return new Result(out.build(), placed);
  }

  /** A resource variable and its read; returns the read's node name. */
  private static String variable(List<NodeDef> added, java.util.Set<String> names, String name, String sharedName,
      long[] shape) {
    TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
    for (long d : shape) {
      s.addDim(TensorShapeProto.Dim.newBuilder().setSize(d));
    }
    added.add(NodeDef.newBuilder().setName(name).setOp("VarHandleOp").putAttr("dtype", type())
        .putAttr("shape", AttrValue.newBuilder().setShape(s).build())
        .putAttr("shared_name", AttrValue.newBuilder().setS(com.google.protobuf.ByteString.copyFromUtf8(sharedName))
            .build())
        .putAttr("container", AttrValue.newBuilder().setS(com.google.protobuf.ByteString.EMPTY).build()).build());
    String read = name + "/read";
    added.add(NodeDef.newBuilder().setName(read).setOp("ReadVariableOp").addInput(name).putAttr("dtype", type())
        .build());
    names.add(name);
    names.add(read);
    return read;
  }

  private static String unique(java.util.Set<String> names, String base) {
    String name = base;
    for (int i = 1; names.contains(name) || names.contains(name + "/lora_kernel_a"); i++) {
      name = base + "_" + i;
    }
    names.add(name);
    return name;
  }

  private static AttrValue type() {
    return AttrValue.newBuilder().setType(DataType.DT_FLOAT).build();
  }

  private static AttrValue flag(boolean b) {
    return AttrValue.newBuilder().setB(b).build();
  }
}
