package org.finetune.graph;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.TensorProto;
import org.tensorflow.proto.TensorShapeProto;

/**
 * Replaces the {@code TensorList} ops of an unrolled recurrent loop by ops with gradients.
 *
 * <p>Keras's recurrent layers feed their loop through lists: {@code TensorListFromTensor} splits
 * the time-major input, each step reads its slice with {@code TensorListGetItem} at the step's
 * counter, writes its output with {@code TensorListSetItem}, and after the loop
 * {@code TensorListStack} joins the outputs. The runtime has no gradient for these ops. Once the
 * loop is unrolled, every index is a number known before the graph runs, so each read becomes a
 * {@code GatherV2} of the source tensor (or the very tensor written there earlier) and each stack a
 * {@code Pack} of the written tensors, in index order. A list whose indices are not fixed, or a
 * stack with an element never written, is left as it was.
 *
 * <p>The list ops themselves are still copied (their values stay correct for anything that reads
 * them); once rewritten nothing needs them and they never run.
 */
final class TensorLists {
  /** What a list-valued tensor holds, as far as is known before running. */
  private sealed interface ListValue permits Split, Written {}

  /** The rows of {@code tensor} along its first dimension. */
  private record Split(String tensor, DataType dtype) implements ListValue {}

  /** A list of {@code size} elements (-1: not fixed) of which {@code items} were written. */
  private record Written(long size, TreeMap<Long, String> items, DataType dtype) implements ListValue {}

  private final StaticValues values;
  private final Map<String, ListValue> lists = new HashMap<>();

  TensorLists(StaticValues values) {
    this.values = values;
  }

  /**
   * The nodes that replace {@code node} (inputs already flat, named as it will be), the last one
   * computing its output; empty when the node is copied as it is. Records what list ops make.
   */
  List<NodeDef> rewrite(NodeDef node) {
    List<String> in = node.getInputList();
    String name = node.getName();
    switch (node.getOp()) {
      case "TensorListFromTensor" -> lists.put(name + ":0", new Split(in.get(0), type(node, "element_dtype")));
      case "TensorListReserve" -> lists.put(name + ":0",
          new Written(values.scalar(in.get(1)).orElse(-1L), new TreeMap<>(), type(node, "element_dtype")));
      case "Identity" -> {
        ListValue v = lists.get(in.get(0));
        if (v != null) {
          lists.put(name + ":0", v);
        }
      }
      case "TensorListSetItem" -> {
        ListValue v = lists.get(in.get(0));
        Optional<Long> index = values.scalar(in.get(1));
        if (v instanceof Written w && index.isPresent() && index.get() >= 0 && (w.size() < 0 || index.get() < w.size())) {
          TreeMap<Long, String> items = new TreeMap<>(w.items());
          items.put(index.get(), in.get(2));
          lists.put(name + ":0", new Written(w.size(), items, w.dtype()));
        }
      }
      case "TensorListGetItem" -> {
        ListValue v = lists.get(in.get(0));
        if (v instanceof Split s) {
          return List.of(axisZero(name), NodeDef.newBuilder().setName(name).setOp("GatherV2").setDevice(node.getDevice())
              .addInput(s.tensor()).addInput(in.get(1)).addInput(name + "/finetune_axis")
              .putAttr("Tparams", typeAttr(s.dtype())).putAttr("Tindices", typeAttr(DataType.DT_INT32))
              .putAttr("Taxis", typeAttr(DataType.DT_INT32)).putAttr("batch_dims", AttrValue.newBuilder().setI(0).build())
              .build());
        }
        Optional<Long> index = values.scalar(in.get(1));
        if (v instanceof Written w && index.isPresent() && w.items().containsKey(index.get())) {
          return List.of(NodeDef.newBuilder().setName(name).setOp("Identity").setDevice(node.getDevice())
              .addInput(w.items().get(index.get())).putAttr("T", typeAttr(w.dtype())).build());
        }
      }
      case "TensorListStack" -> {
        ListValue v = lists.get(in.get(0));
        if (v instanceof Written w && w.size() > 0 && w.items().size() == w.size()) {
          NodeDef.Builder pack = NodeDef.newBuilder().setName(name).setOp("Pack").setDevice(node.getDevice())
              .putAttr("T", typeAttr(w.dtype())).putAttr("N", AttrValue.newBuilder().setI(w.size()).build())
              .putAttr("axis", AttrValue.newBuilder().setI(0).build());
          w.items().values().forEach(pack::addInput);
          // Stacked: the list's length before its elements' shape, which later loops' lengths come from.
          long[] element = values.elementShape(in.get(1));
          if (element != null) {
            long[] dims = new long[element.length + 1];
            dims[0] = w.size();
            System.arraycopy(element, 0, dims, 1, element.length);
            values.declareShape(name + ":0", dims);
          }
          return List.of(pack.build());
        }
        if (v instanceof Split s) {
          return List.of(NodeDef.newBuilder().setName(name).setOp("Identity").setDevice(node.getDevice())
              .addInput(s.tensor()).putAttr("T", typeAttr(s.dtype())).build());
        }
      }
      default -> { }
    }
    return List.of();
  }

  /** The output argument name of a list op this class may replace. */
  static String outputArg(String op) {
    return switch (op) {
      case "TensorListGetItem" -> "item";
      case "TensorListStack" -> "tensor";
      default -> "output";
    };
  }

  /** Forgets the lists of removed nodes. */
  void forget(java.util.Collection<String> nodeNames) {
    lists.keySet().removeIf(t -> nodeNames.contains(t.substring(0, t.lastIndexOf(':'))));
  }

  private static NodeDef axisZero(String name) {
    return NodeDef.newBuilder().setName(name + "/finetune_axis").setOp("Const")
        .putAttr("dtype", typeAttr(DataType.DT_INT32))
        .putAttr("value", AttrValue.newBuilder().setTensor(TensorProto.newBuilder().setDtype(DataType.DT_INT32)
            .setTensorShape(TensorShapeProto.getDefaultInstance()).addIntVal(0)).build()).build();
  }

  private static DataType type(NodeDef node, String attr) {
    AttrValue v = node.getAttrMap().get(attr);
    return v == null ? DataType.DT_INVALID : v.getType();
  }

  private static AttrValue typeAttr(DataType t) {
    return AttrValue.newBuilder().setType(t).build();
  }
}
