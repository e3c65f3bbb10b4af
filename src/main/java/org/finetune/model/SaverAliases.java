package org.finetune.model;

import java.util.LinkedHashMap;
import java.util.Map;
import org.finetune.savedmodel.CheckpointKeys;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.SavedModelDirectory;
import org.finetune.savedmodel.SaverMap;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorNames;

/** Finds the saver's handles that loading made as copies of the handles the serving function reads. */
final class SaverAliases {
  private SaverAliases() {}

  /** Alias handle to the source handle it copies (see {@link KerasSavedModel#saverAliases()}). */
  static Map<String, String> find(ModelInfo info, SavedModelDirectory files) {
    java.util.Optional<SaverMap> saver = SaverMap.of(files);
    if (saver.isEmpty()) {
      return Map.of();
    }
    java.util.Set<String> serving = new java.util.HashSet<>();
    for (org.finetune.savedmodel.VariableInfo v : info.variables()) {
      if (!v.handle().isEmpty()) {
        serving.add(v.handle());
      }
    }
    Map<String, String> servingByKey = new java.util.HashMap<>();
    for (CheckpointKeys.Restore r : CheckpointKeys.forCapturedHandles(files)) {
      servingByKey.putIfAbsent(r.key(), r.handle());
    }
    Map<String, org.tensorflow.proto.NodeDef> nodes = new java.util.HashMap<>();
    files.metaGraph().getGraphDef().getNodeList().forEach(n -> nodes.put(n.getName(), n));
    java.util.Set<String> readBySignatures = handlesReadBySignatures(info, nodes);
    Map<String, String> out = new LinkedHashMap<>();
    saver.get().handleByKey().forEach((key, handle) -> {
      if (serving.contains(handle) || out.containsKey(handle)) {
        return;
      }
      // Only the handles the serving function reads can have been trained; a copy of anything
      // else still holds what loading gave it.
      String source = saver.get().sourceOf(handle);
      if (!serving.contains(source)) {
        source = servingByKey.get(key);
      }
      if (source != null && serving.contains(source) && !source.equals(handle) && isHandle(nodes.get(handle))
          && isHandle(nodes.get(source)) && !readBySignatures.contains(handle)) {
        out.put(handle, source);
      }
    });
    return java.util.Collections.unmodifiableMap(out);
  }

  private static boolean isHandle(org.tensorflow.proto.NodeDef n) {
    return n != null && n.getOp().equals("VarHandleOp");
  }

  /** Variable handles among the top-level inputs of every signature's outputs (the calls' captures). */
  private static java.util.Set<String> handlesReadBySignatures(ModelInfo info,
      Map<String, org.tensorflow.proto.NodeDef> nodes) {
    java.util.Set<String> seen = new java.util.HashSet<>();
    java.util.ArrayDeque<String> todo = new java.util.ArrayDeque<>();
    for (SignatureInfo sig : info.signatures().values()) {
      sig.outputs().forEach(t -> todo.add(TensorNames.nodeOf(t.tensorName())));
    }
    java.util.Set<String> handles = new java.util.HashSet<>();
    while (!todo.isEmpty()) {
      String name = todo.pop();
      if (!seen.add(name)) {
        continue;
      }
      org.tensorflow.proto.NodeDef n = nodes.get(name);
      if (n == null) {
        continue;
      }
      if (isHandle(n)) {
        handles.add(name);
      }
      for (String input : n.getInputList()) {
        todo.add(TensorNames.nodeOf(input.startsWith("^") ? input.substring(1) : input));
      }
    }
    return handles;
  }
}
