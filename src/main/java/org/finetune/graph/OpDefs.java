package org.finetune.graph;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.tensorflow.TensorFlow;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.OpDef;
import org.tensorflow.proto.OpList;

/**
 * The op definitions registered in the TensorFlow runtime we link against, and what follows from
 * them for one node: how many tensors each output argument stands for and of which dtypes.
 * Reading them loads the native library but starts no session.
 */
public final class OpDefs {
  private static volatile OpDefs runtime;

  private final Map<String, OpDef> byName;

  private OpDefs(OpList list) {
    Map<String, OpDef> map = new HashMap<>();
    for (OpDef def : list.getOpList()) {
      map.put(def.getName(), def);
    }
    this.byName = Collections.unmodifiableMap(map);
  }

  /** The op definitions of the linked TensorFlow runtime (read once). */
  public static OpDefs runtime() {
    OpDefs local = runtime;
    if (local == null) {
      synchronized (OpDefs.class) {
        local = runtime;
        if (local == null) {
          local = new OpDefs(TensorFlow.registeredOpList());
          runtime = local;
        }
      }
    }
    return local;
  }

  /** The definition of {@code opType}, if the runtime registers it. */
  public Optional<OpDef> find(String opType) {
    return Optional.ofNullable(byName.get(opType));
  }

  /**
   * The dtypes of every output tensor of {@code node} in flat order, expanding list-valued output
   * arguments ({@code number_attr}, {@code type_list_attr}). Empty when the op is unknown.
   */
  public List<DataType> outputTypes(NodeDef node) {
    OpDef def = byName.get(node.getOp());
    if (def == null) {
      return List.of();
    }
    List<DataType> out = new ArrayList<>();
    Map<String, AttrValue> attrs = withDefaults(def, node.getAttrMap());
    for (OpDef.ArgDef arg : def.getOutputArgList()) {
      out.addAll(argTypes(arg, attrs));
    }
    return out;
  }

  /**
   * How a function body names output {@code index} of {@code node}: {@code <output arg>:<index in
   * that arg>} (a graph says {@code node:5}, a FunctionDef {@code node:output:2}).
   *
   * @throws IllegalArgumentException when the op is unknown or has no such output
   */
  public String functionOutput(NodeDef node, int index) {
    OpDef def = byName.get(node.getOp());
    if (def == null) {
      throw new IllegalArgumentException("unknown op " + node.getOp() + " (node " + node.getName() + ")");
    }
    Map<String, AttrValue> attrs = withDefaults(def, node.getAttrMap());
    int start = 0;
    for (OpDef.ArgDef arg : def.getOutputArgList()) {
      int n = argTypes(arg, attrs).size();
      if (index < start + n) {
        return arg.getName() + ":" + (index - start);
      }
      start += n;
    }
    throw new IllegalArgumentException(node.getName() + " (" + node.getOp() + ") has no output " + index);
  }

  /**
   * The node's attributes with the op's defaults filled in: graphs and function bodies omit
   * attributes that have their default value (MaxPool's {@code T} is float unless stated).
   */
  public static Map<String, AttrValue> withDefaults(OpDef def, Map<String, AttrValue> attrs) {
    Map<String, AttrValue> out = new HashMap<>(attrs);
    for (OpDef.AttrDef a : def.getAttrList()) {
      if (!out.containsKey(a.getName()) && a.hasDefaultValue()) {
        out.put(a.getName(), a.getDefaultValue());
      }
    }
    return out;
  }

  static List<DataType> argTypes(OpDef.ArgDef arg, Map<String, AttrValue> attrs) {
    if (!arg.getTypeListAttr().isEmpty()) {
      AttrValue list = attrs.get(arg.getTypeListAttr());
      return list == null ? List.of() : list.getList().getTypeList();
    }
    DataType type = arg.getType();
    if (type == DataType.DT_INVALID && !arg.getTypeAttr().isEmpty()) {
      AttrValue value = attrs.get(arg.getTypeAttr());
      type = value == null ? DataType.DT_INVALID : value.getType();
    }
    int count = 1;
    if (!arg.getNumberAttr().isEmpty()) {
      AttrValue n = attrs.get(arg.getNumberAttr());
      count = n == null ? 0 : (int) n.getI();
    }
    return Collections.nCopies(count, type);
  }
}
