package org.finetune.savedmodel;

import com.google.protobuf.InvalidProtocolBufferException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedConcreteFunction;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObject;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObjectGraph;
import org.tensorflow.proto.TrackableObjectGraphOuterClass.TrackableObjectGraph;
import org.tensorflow.proto.TrackableObjectGraphOuterClass.TrackableObjectGraph.TrackableObject;

/**
 * Which checkpoint key holds the value of each variable handle that a function of the graph
 * captures, found the way TensorFlow's Python loader finds it: the call's captured inputs are the
 * concrete function's {@code bound_inputs} (object-graph nodes); each node's path from the root
 * leads, in the checkpoint's own object graph ({@code _CHECKPOINTABLE_OBJECT_GRAPH}), to the
 * node whose {@code VARIABLE_VALUE} attribute names the key.
 *
 * <p>The C++ loader (and so TF Java and TF Serving) only runs the graph's restore op. For
 * {@code tf.saved_model.save} of a Keras 3 model that op fills copies of the variables, not the
 * handles the serving function reads, which then do not exist at run time. These keys let us
 * restore those handles directly.
 */
public final class CheckpointKeys {
  /** A checkpoint tensor to restore into a graph handle. */
  public record Restore(String handle, String key, DataType dtype) {}

  private static final String OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH";

  private CheckpointKeys() {}

  /** For every top-level variable handle captured by a function call of the graph, its checkpoint key. */
  public static List<Restore> forCapturedHandles(SavedModelDirectory model) {
    SavedObjectGraph objects = model.metaGraph().getObjectGraphDef();
    Optional<CheckpointIndex> index = model.checkpoint();
    if (objects.getNodesCount() == 0 || index.isEmpty()) {
      return List.of();
    }
    Path prefix = model.dir().resolve("variables").resolve("variables");
    Optional<byte[]> bytes = index.get().readScalarString(prefix, OBJECT_GRAPH_KEY);
    if (bytes.isEmpty()) {
      return List.of();
    }
    TrackableObjectGraph checkpointGraph;
    try {
      checkpointGraph = TrackableObjectGraph.parseFrom(bytes.get());
    } catch (InvalidProtocolBufferException e) {
      throw new InvalidModelException(prefix, "the object graph in " + prefix + ".data-* is damaged ("
          + e.getMessage() + "). Re-copy or re-export the SavedModel.", e);
    }
    Map<Integer, List<String>> paths = pathsFromRoot(objects);
    Map<String, Restore> out = new LinkedHashMap<>();
    for (NodeDef node : model.metaGraph().getGraphDef().getNodeList()) {
      AttrValue f = node.getAttrMap().get("f");
      SavedConcreteFunction fn = f == null ? null : objects.getConcreteFunctionsMap().get(f.getFunc().getName());
      if (fn == null) {
        continue;
      }
      List<String> inputs = VariableResolver.dataInputs(node);
      int first = inputs.size() - fn.getBoundInputsCount();
      for (int i = 0; i < fn.getBoundInputsCount(); i++) {
        int id = fn.getBoundInputs(i);
        SavedObject object = objects.getNodes(id);
        if (object.getKindCase() != SavedObject.KindCase.VARIABLE || first + i < 0) {
          continue;
        }
        String handle = TensorNames.nodeOf(inputs.get(first + i));
        keyAt(checkpointGraph, paths.get(id)).ifPresent(key ->
            out.putIfAbsent(handle, new Restore(handle, key, object.getVariable().getDtype())));
      }
    }
    return new ArrayList<>(out.values());
  }

  private static Optional<String> keyAt(TrackableObjectGraph graph, List<String> path) {
    if (path == null || graph.getNodesCount() == 0) {
      return Optional.empty();
    }
    TrackableObject node = graph.getNodes(0);
    for (String name : path) {
      TrackableObject next = null;
      for (TrackableObjectGraph.TrackableObject.ObjectReference child : node.getChildrenList()) {
        if (child.getLocalName().equals(name)) {
          next = graph.getNodes(child.getNodeId());
          break;
        }
      }
      if (next == null) {
        return Optional.empty();
      }
      node = next;
    }
    for (TrackableObject.SerializedTensor attribute : node.getAttributesList()) {
      if (attribute.getName().equals("VARIABLE_VALUE")) {
        return Optional.of(attribute.getCheckpointKey());
      }
    }
    return Optional.empty();
  }

  /** The first path of child names from the root to every node (breadth first). */
  private static Map<Integer, List<String>> pathsFromRoot(SavedObjectGraph graph) {
    Map<Integer, List<String>> paths = new HashMap<>();
    java.util.ArrayDeque<Integer> queue = new java.util.ArrayDeque<>();
    paths.put(0, List.of());
    queue.add(0);
    while (!queue.isEmpty()) {
      int id = queue.poll();
      for (TrackableObjectGraph.TrackableObject.ObjectReference child : graph.getNodes(id).getChildrenList()) {
        if (!paths.containsKey(child.getNodeId())) {
          List<String> p = new ArrayList<>(paths.get(id));
          p.add(child.getLocalName());
          paths.put(child.getNodeId(), List.copyOf(p));
          queue.add(child.getNodeId());
        }
      }
    }
    return paths;
  }
}
