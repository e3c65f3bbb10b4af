package org.finetune.savedmodel;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.CollectionDef;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.MetaGraphDef;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedConcreteFunction;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObject;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObjectGraph;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedVariable;
import org.tensorflow.proto.TensorShapeProto;
import org.tensorflow.proto.VariableDef;

/**
 * Finds a model's variables, each once, in forward order, and the top-level graph node through
 * which the signature's function reads each one.
 *
 * <p>Which variables the serving function reads is taken from the graph, never from names: the
 * signature's outputs lead to its call node; the call's trailing inputs are the captured variable
 * handles, and the object graph's {@code bound_inputs} of that concrete function name the saved
 * objects they are, in the same order. Variables that the object graph holds twice (a Keras 3
 * export tracks each under {@code variables/N} and {@code _all_variables/N}) count once.
 */
final class VariableResolver {
  /** Variables in forward order, and which top-level call nodes the signature goes through. */
  record Resolved(List<VariableInfo> variables, Map<String, Integer> indexByHandle, List<NodeDef> calls) {}

  private VariableResolver() {}

  static Resolved resolve(MetaGraphDef meta, SignatureInfo signature) {
    Map<String, NodeDef> nodes = new HashMap<>();
    meta.getGraphDef().getNodeList().forEach(n -> nodes.put(n.getName(), n));
    List<NodeDef> calls = signatureCalls(nodes, signature);
    SavedObjectGraph objects = meta.getObjectGraphDef();
    if (objects.getNodesCount() == 0) {
      return resolveTf1(meta, calls, readBy(nodes, signature));
    }
    List<VariableInfo> variables = new ArrayList<>();
    Map<Integer, Integer> indexByObject = new HashMap<>();
    Map<String, Integer> indexByHandle = new HashMap<>();
    for (NodeDef call : calls) {
      AttrValue f = call.getAttrMap().get("f");
      SavedConcreteFunction fn = f == null ? null : objects.getConcreteFunctionsMap().get(f.getFunc().getName());
      if (fn == null) {
        continue;
      }
      List<String> inputs = dataInputs(call);
      int first = inputs.size() - fn.getBoundInputsCount();
      for (int i = 0; i < fn.getBoundInputsCount(); i++) {
        int objectId = fn.getBoundInputs(i);
        SavedObject object = objects.getNodes(objectId);
        if (object.getKindCase() != SavedObject.KindCase.VARIABLE) {
          continue;
        }
        String handle = TensorNames.nodeOf(inputs.get(first + i));
        Integer index = indexByObject.get(objectId);
        if (index == null) {
          index = variables.size();
          indexByObject.put(objectId, index);
          variables.add(fromSaved(object.getVariable(), handle, objectPath(objects, objectId)));
        }
        indexByHandle.put(handle, index);
      }
    }
    // Variables the signature does not read: kept, unless they are a second record of one it reads.
    Set<String> seen = new HashSet<>();
    variables.forEach(v -> seen.add(aliasKey(v)));
    for (int id = 0; id < objects.getNodesCount(); id++) {
      SavedObject object = objects.getNodes(id);
      if (object.getKindCase() != SavedObject.KindCase.VARIABLE || indexByObject.containsKey(id)) {
        continue;
      }
      VariableInfo v = fromSaved(object.getVariable(), "", objectPath(objects, id));
      if (seen.add(aliasKey(v))) {
        indexByObject.put(id, variables.size());
        variables.add(v);
      }
    }
    return new Resolved(variables, indexByHandle, calls);
  }

  /** TF1: variables are graph nodes; trainable ones are listed in the trainable_variables collection. */
  /** Names of the top-level nodes the signature's outputs depend on. */
  private static Set<String> readBy(Map<String, NodeDef> nodes, SignatureInfo signature) {
    Set<String> seen = new HashSet<>();
    java.util.ArrayDeque<String> todo = new java.util.ArrayDeque<>();
    signature.outputs().forEach(o -> todo.add(TensorNames.nodeOf(o.tensorName())));
    while (!todo.isEmpty()) {
      String name = todo.poll();
      NodeDef n = nodes.get(name);
      if (n != null && seen.add(name)) {
        n.getInputList().forEach(i -> todo.add(TensorNames.nodeOf(i)));
      }
    }
    return seen;
  }

  private static Resolved resolveTf1(MetaGraphDef meta, List<NodeDef> calls, Set<String> read) {
    Set<String> trainable = new HashSet<>();
    CollectionDef collection = meta.getCollectionDefMap().get("trainable_variables");
    if (collection != null) {
      for (com.google.protobuf.ByteString bytes : collection.getBytesList().getValueList()) {
        try {
          trainable.add(TensorNames.nodeOf(VariableDef.parseFrom(bytes).getVariableName()));
        } catch (com.google.protobuf.InvalidProtocolBufferException e) {
          // An unreadable entry marks nothing trainable; the variable itself is still listed.
        }
      }
    }
    List<VariableInfo> variables = new ArrayList<>();
    Map<String, Integer> indexByHandle = new LinkedHashMap<>();
    for (NodeDef node : meta.getGraphDef().getNodeList()) {
      switch (node.getOp()) {
        case "VarHandleOp": case "VariableV2": case "Variable":
          break;
        default:
          continue;
      }
      AttrValue dtype = node.getAttrMap().get("dtype");
      AttrValue shape = node.getAttrMap().get("shape");
      boolean isRead = read.contains(node.getName());
      if (isRead) {
        indexByHandle.put(node.getName(), variables.size());
      }
      variables.add(new VariableInfo(node.getName(), layerOf(node.getName()),
          shape == null ? List.of() : dims(shape.getShape()),
          DTypes.name(dtype == null ? DataType.DT_INVALID : dtype.getType()),
          trainable.contains(node.getName()), isRead ? node.getName() : "", VariableInfo.Kind.WEIGHT));
    }
    return new Resolved(variables, indexByHandle, calls);
  }

  /** The top-level call nodes that compute the signature's outputs (through Identity nodes). */
  private static List<NodeDef> signatureCalls(Map<String, NodeDef> nodes, SignatureInfo signature) {
    List<NodeDef> calls = new ArrayList<>();
    Set<String> seen = new HashSet<>();
    for (TensorSpec out : signature.outputs()) {
      NodeDef node = nodes.get(TensorNames.nodeOf(out.tensorName()));
      while (node != null && node.getOp().equals("Identity") && node.getInputCount() > 0) {
        node = nodes.get(TensorNames.nodeOf(node.getInput(0)));
      }
      if (node != null && node.getAttrMap().containsKey("f") && seen.add(node.getName())) {
        calls.add(node);
      }
    }
    return calls;
  }

  static List<String> dataInputs(NodeDef node) {
    List<String> out = new ArrayList<>();
    for (String input : node.getInputList()) {
      if (!input.startsWith("^")) {
        out.add(input);
      }
    }
    return out;
  }

  private static VariableInfo fromSaved(SavedVariable v, String handle, String objectPath) {
    String name = v.getName().isEmpty() ? objectPath : v.getName();
    if (name.endsWith(":0")) {
      name = name.substring(0, name.length() - 2);
    }
    boolean rngState = !v.getTrainable() && (name.equals(VariableInfo.SEED_STATE_NAME)
        || name.endsWith("/" + VariableInfo.SEED_STATE_NAME));
    boolean trainingState = !v.getTrainable() && (objectPath.startsWith("optimizer/")
        || objectPath.startsWith("keras_api/metrics/"));
    return new VariableInfo(name, layerOf(name), dims(v.getShape()), DTypes.name(v.getDtype()), v.getTrainable(),
        handle, rngState ? VariableInfo.Kind.RNG_STATE
            : trainingState ? VariableInfo.Kind.TRAINING_STATE : VariableInfo.Kind.WEIGHT);
  }

  private static String aliasKey(VariableInfo v) {
    return v.name() + "|" + v.dtype() + "|" + v.shape();
  }

  static String layerOf(String variableName) {
    int slash = variableName.indexOf('/');
    return slash < 0 ? variableName : variableName.substring(0, slash);
  }

  private static List<Long> dims(TensorShapeProto shape) {
    List<Long> out = new ArrayList<>();
    shape.getDimList().forEach(d -> out.add(d.getSize()));
    return out;
  }

  /** The first path from the root to an object, e.g. {@code variables/3}. */
  private static String objectPath(SavedObjectGraph graph, int target) {
    Map<Integer, String> paths = new HashMap<>();
    java.util.ArrayDeque<Integer> queue = new java.util.ArrayDeque<>();
    paths.put(0, "");
    queue.add(0);
    while (!queue.isEmpty()) {
      int id = queue.poll();
      if (id == target) {
        return paths.get(id);
      }
      for (org.tensorflow.proto.TrackableObjectGraphOuterClass.TrackableObjectGraph.TrackableObject.ObjectReference child
          : graph.getNodes(id).getChildrenList()) {
        if (!paths.containsKey(child.getNodeId())) {
          String parent = paths.get(id);
          paths.put(child.getNodeId(), parent.isEmpty() ? child.getLocalName() : parent + "/" + child.getLocalName());
          queue.add(child.getNodeId());
        }
      }
    }
    return "variable_" + target;
  }
}
