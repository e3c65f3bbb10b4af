package org.finetune.savedmodel;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import com.google.protobuf.CodedInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.tensorflow.proto.MetaGraphDef;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObject;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObjectGraph;

/**
 * The layer each variable of a tf_keras SavedModel belongs to, as {@code model.summary()} names it.
 *
 * <p>A tf_keras variable is named after the layer that created it, which is not always the layer
 * the model holds: a wrapper (tfmot's {@code QuantizeWrapperV2} {@code quant_hidden} around the
 * Dense {@code hidden}) holds the inner layer's {@code hidden/kernel} and its own
 * {@code quant_hidden/kernel_min}, and Keras's summary counts both as {@code quant_hidden}'s. The
 * model's layers are the root's {@code layer-N} and {@code layer_with_weights-N} children in the
 * object graph; {@code keras_metadata.pb} gives each its Keras name; every variable reachable from a
 * layer belongs to it.
 */
final class TfKerasLayerNames {
  private static final Pattern LAYER_EDGE = Pattern.compile("layer(_with_weights)?-\\d+");

  private TfKerasLayerNames() {}

  /**
   * The variables with their layers renamed, and the model's layers in Keras's order (the order
   * of {@code model.layers}: the root's {@code layer-N} edges), empty where unknown.
   */
  record Named(List<VariableInfo> variables, List<String> layerOrder) {}

  /**
   * {@code variables} with their layers named as Keras's summary names them; unchanged where the
   * metadata cannot be read or names no layer for a variable.
   */
  static Named named(Path metadataFile, MetaGraphDef meta, List<VariableInfo> variables) {
    Map<Integer, String> names;
    try {
      names = layerNames(Files.readAllBytes(metadataFile));
    } catch (IOException | RuntimeException e) {
      return new Named(variables, List.of());
    }
    SavedObjectGraph graph = meta.getObjectGraphDef();
    if (graph.getNodesCount() == 0) {
      return new Named(variables, List.of());
    }
    Map<String, String> layerByVariable = new HashMap<>();
    java.util.TreeMap<Integer, String> order = new java.util.TreeMap<>();
    for (var edge : graph.getNodes(0).getChildrenList()) {
      String layer = names.get(edge.getNodeId());
      if (layer == null || !LAYER_EDGE.matcher(edge.getLocalName()).matches()) {
        continue;
      }
      if (edge.getLocalName().startsWith("layer-")) {
        order.put(Integer.parseInt(edge.getLocalName().substring("layer-".length())), layer);
      }
      for (String variable : variablesUnder(graph, edge.getNodeId())) {
        layerByVariable.putIfAbsent(variable, layer);
      }
    }
    List<VariableInfo> out = new ArrayList<>();
    for (VariableInfo v : variables) {
      String layer = layerByVariable.get(v.name());
      out.add(v.kind() == VariableInfo.Kind.WEIGHT && layer != null ? v.withLayer(layer) : v);
    }
    return new Named(out, List.copyOf(order.values()));
  }

  /** The names (without {@code :0}) of the variables reachable from an object. */
  private static Set<String> variablesUnder(SavedObjectGraph graph, int start) {
    Set<String> out = new HashSet<>();
    Set<Integer> seen = new HashSet<>();
    ArrayDeque<Integer> todo = new ArrayDeque<>(List.of(start));
    while (!todo.isEmpty()) {
      int id = todo.poll();
      if (!seen.add(id) || id >= graph.getNodesCount()) {
        continue;
      }
      SavedObject o = graph.getNodes(id);
      if (o.getKindCase() == SavedObject.KindCase.VARIABLE) {
        String name = o.getVariable().getName();
        out.add(name.endsWith(":0") ? name.substring(0, name.length() - 2) : name);
      }
      o.getChildrenList().forEach(c -> todo.add(c.getNodeId()));
    }
    return out;
  }

  /**
   * Object id to Keras name, from {@code keras_metadata.pb}: a {@code SavedMetadata} message whose
   * repeated field 1 holds one message per object, with {@code node_id} (field 2) and the
   * object's Keras config as JSON in {@code metadata} (field 5).
   */
  static Map<Integer, String> layerNames(byte[] bytes) throws IOException {
    Map<Integer, String> out = new HashMap<>();
    CodedInputStream in = CodedInputStream.newInstance(bytes);
    in.setSizeLimit(Integer.MAX_VALUE);
    for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
      if (tag >>> 3 != 1 || (tag & 7) != 2) {
        in.skipField(tag);
        continue;
      }
      CodedInputStream node = CodedInputStream.newInstance(in.readByteArray());
      int id = -1;
      String metadata = null;
      for (int t = node.readTag(); t != 0; t = node.readTag()) {
        if (t >>> 3 == 2 && (t & 7) == 0) {
          id = node.readInt32();
        } else if (t >>> 3 == 5 && (t & 7) == 2) {
          metadata = node.readStringRequireUtf8();
        } else {
          node.skipField(t);
        }
      }
      if (id >= 0 && metadata != null && !metadata.isEmpty()) {
        JsonElement json = JsonParser.parseString(metadata);
        if (json.isJsonObject() && json.getAsJsonObject().has("name")
            && json.getAsJsonObject().get("name").isJsonPrimitive()) {
          out.put(id, json.getAsJsonObject().get("name").getAsString());
        }
      }
    }
    return out;
  }
}
