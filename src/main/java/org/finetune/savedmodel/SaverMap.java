package org.finetune.savedmodel;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.tensorflow.proto.FunctionDef;
import org.tensorflow.proto.MetaGraphDef;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.OpDef;
import org.tensorflow.proto.SaverDef;

/**
 * How a SavedModel's own saver writes its checkpoint, read from the MetaGraph: the tensor that
 * takes the file prefix, the tensor that runs the save, and for each checkpoint key the top-level
 * variable handle whose value it writes; plus the copies between handles that loading makes.
 *
 * <p>A saver need not write the handles the serving function reads. A Keras 3
 * {@code model.export()} saves {@code Variable_N} handles that loading initialises as copies of
 * the serving handles (an {@code AssignVariableOp(Variable_N, ReadVariableOp(x_1))} in the init
 * op), so after training the serving handles the copies are stale until copied again. Found from
 * the graph itself (the save function's {@code SaveV2} inputs traced back to the call's inputs),
 * never from names.
 *
 * @param filenameTensor the tensor to feed with the checkpoint prefix
 * @param saveTensor the tensor to fetch to save
 * @param handleByKey checkpoint key to the top-level handle (or TF1 variable) node it saves
 * @param copiedFrom handle node to the handle node loading copies it from
 */
public record SaverMap(String filenameTensor, String saveTensor, Map<String, String> handleByKey,
    Map<String, String> copiedFrom) {
  private static final Set<String> PASS_THROUGH = Set.of("Identity", "ReadVariableOp", "Snapshot");

  public SaverMap {
    handleByKey = Collections.unmodifiableMap(new LinkedHashMap<>(handleByKey));
    copiedFrom = Collections.unmodifiableMap(new LinkedHashMap<>(copiedFrom));
  }

  /**
   * The saver of {@code model}'s MetaGraph; empty when it has none.
   *
   * @throws InvalidModelException when the saver's graph is not one we can follow
   */
  public static Optional<SaverMap> of(SavedModelDirectory model) {
    MetaGraphDef meta = model.metaGraph();
    if (!meta.hasSaverDef()) {
      return Optional.empty();
    }
    SaverDef saver = meta.getSaverDef();
    Map<String, NodeDef> nodes = new HashMap<>();
    meta.getGraphDef().getNodeList().forEach(n -> nodes.put(n.getName(), n));
    NodeDef save = nodes.get(TensorNames.nodeOf(saver.getSaveTensorName()));
    if (save == null) {
      throw new InvalidModelException(model.dir(), "the saver's save tensor " + saver.getSaveTensorName()
          + " is not in the graph of " + model.dir() + ". Re-export the SavedModel.");
    }
    Map<String, String> byKey = new LinkedHashMap<>();
    FunctionDef function = calledFunction(meta, save);
    if (function != null) {
      // TF2: a call of the save function; its arguments after the prefix are the handles.
      List<String> callInputs = VariableResolver.dataInputs(save);
      Map<String, String> argToHandle = new HashMap<>();
      List<OpDef.ArgDef> args = function.getSignature().getInputArgList();
      for (int i = 0; i < args.size() && i < callInputs.size(); i++) {
        argToHandle.put(args.get(i).getName(), TensorNames.nodeOf(callInputs.get(i)));
      }
      Map<String, NodeDef> body = new HashMap<>();
      function.getNodeDefList().forEach(n -> body.put(n.getName(), n));
      for (NodeDef n : function.getNodeDefList()) {
        if (n.getOp().equals("SaveV2")) {
          collect(n, body, argToHandle, byKey, true);
        }
      }
    } else {
      // TF1: SaveV2 ops in the graph itself, on the variables.
      for (NodeDef n : meta.getGraphDef().getNodeList()) {
        if (n.getOp().equals("SaveV2")) {
          collect(n, nodes, Map.of(), byKey, false);
        }
      }
    }
    Map<String, String> copies = new LinkedHashMap<>();
    for (NodeDef n : meta.getGraphDef().getNodeList()) {
      if (!n.getOp().equals("AssignVariableOp") || n.getInputCount() < 2) {
        continue;
      }
      NodeDef target = nodes.get(TensorNames.nodeOf(n.getInput(0)));
      NodeDef value = nodes.get(TensorNames.nodeOf(n.getInput(1)));
      while (value != null && value.getOp().equals("Identity") && value.getInputCount() > 0) {
        value = nodes.get(TensorNames.nodeOf(value.getInput(0)));
      }
      if (target != null && target.getOp().equals("VarHandleOp") && value != null
          && value.getOp().equals("ReadVariableOp")) {
        NodeDef source = nodes.get(TensorNames.nodeOf(value.getInput(0)));
        if (source != null && source.getOp().equals("VarHandleOp") && !source.getName().equals(target.getName())) {
          copies.put(target.getName(), source.getName());
        }
      }
    }
    return Optional.of(new SaverMap(saver.getFilenameTensorName(), saver.getSaveTensorName(), byKey, copies));
  }

  /**
   * The handle whose value should be saved under each key after training: the key's own handle,
   * or, when loading made it a copy of another handle, that handle (followed to the end).
   */
  public String sourceOf(String handle) {
    String h = handle;
    for (int guard = 0; copiedFrom.containsKey(h) && guard < 64; guard++) {
      h = copiedFrom.get(h);
    }
    return h;
  }

  private static FunctionDef calledFunction(MetaGraphDef meta, NodeDef node) {
    if (!node.getOp().equals("StatefulPartitionedCall") && !node.getOp().equals("PartitionedCall")) {
      return null;
    }
    String name = node.getAttrMap().get("f").getFunc().getName();
    for (FunctionDef f : meta.getGraphDef().getLibrary().getFunctionList()) {
      if (f.getSignature().getName().equals(name)) {
        return f;
      }
    }
    return null;
  }

  /** Adds {@code key -> handle} for each tensor a SaveV2 node writes that traces back to a variable. */
  private static void collect(NodeDef saveV2, Map<String, NodeDef> scope, Map<String, String> argToHandle,
      Map<String, String> byKey, boolean inFunction) {
    List<String> inputs = VariableResolver.dataInputs(saveV2);
    List<String> keys = stringConstant(scope.get(TensorNames.nodeOf(inputs.get(1))));
    for (int i = 3; i < inputs.size() && i - 3 < keys.size(); i++) {
      String name = TensorNames.nodeOf(inputs.get(i));
      for (int guard = 0; guard < 64; guard++) {
        if (argToHandle.containsKey(name)) {
          byKey.put(keys.get(i - 3), argToHandle.get(name));
          break;
        }
        NodeDef n = scope.get(name);
        if (n == null) {
          break;
        }
        if (!inFunction && (n.getOp().equals("VarHandleOp") || n.getOp().equals("VariableV2"))) {
          byKey.put(keys.get(i - 3), n.getName());
          break;
        }
        if (!PASS_THROUGH.contains(n.getOp()) || n.getInputCount() == 0) {
          break;
        }
        name = TensorNames.nodeOf(n.getInput(0));
      }
    }
  }


  private static List<String> stringConstant(NodeDef node) {
    List<String> out = new ArrayList<>();
    if (node == null || !node.getOp().equals("Const")) {
      return out;
    }
    node.getAttrMap().get("value").getTensor().getStringValList()
        .forEach(b -> out.add(b.toStringUtf8()));
    return out;
  }
}
