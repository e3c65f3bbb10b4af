package org.finetune.savedmodel;

import com.google.protobuf.InvalidProtocolBufferException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.finetune.hint.Setting;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.FunctionDef;
import org.tensorflow.proto.MetaGraphDef;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.SavedModel;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedConcreteFunction;
import org.tensorflow.proto.SavedObjectGraphOuterClass.SavedObjectGraph;
import org.tensorflow.proto.SignatureDef;
import org.tensorflow.proto.TensorInfo;
import org.tensorflow.proto.TrackableObjectGraphOuterClass.TrackableObjectGraph.TrackableObject.ObjectReference;

/**
 * A SavedModel directory read as data, without the TensorFlow runtime (loading a SavedModel runs
 * its ops, so nothing here hands it to the runtime): {@code saved_model.pb} parsed, the MetaGraph
 * with the requested tags chosen, its references checked for consistency, and the checkpoint index
 * read and checked against its data shards.
 */
public final class SavedModelDirectory {
  /** The tag set TF Serving and Keras exports use. */
  public static final Set<String> SERVE = Set.of("serve");

  private final Path dir;
  private final MetaGraphDef metaGraph;
  private final Optional<CheckpointIndex> checkpoint;
  private final boolean kerasMetadata;

  private SavedModelDirectory(Path dir, MetaGraphDef metaGraph, Optional<CheckpointIndex> checkpoint,
      boolean kerasMetadata) {
    this.dir = dir;
    this.metaGraph = metaGraph;
    this.checkpoint = checkpoint;
    this.kerasMetadata = kerasMetadata;
  }

  /**
   * Reads {@code dir} and chooses the MetaGraph tagged exactly {@code tags}.
   *
   * @throws InvalidModelException when the directory, a file in it or the tags are unusable; the
   *     message names the file and the fix
   */
  public static SavedModelDirectory open(Path dir, Set<String> tags) {
    Path pb = locate(dir);
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(pb);
    } catch (IOException e) {
      throw new InvalidModelException(pb, "cannot read " + pb + ": " + e.getMessage(), e);
    }
    SavedModel model;
    try {
      model = SavedModel.parseFrom(bytes);
    } catch (InvalidProtocolBufferException e) {
      throw damaged(pb, "it does not parse as a SavedModel protobuf: " + e.getMessage(), e);
    }
    if (model.getMetaGraphsCount() == 0) {
      throw damaged(pb, "it holds no MetaGraph", null);
    }
    MetaGraphDef meta = chooseMetaGraph(pb, model, tags);
    checkConsistent(pb, meta);
    Optional<CheckpointIndex> checkpoint = Optional.empty();
    if (hasVariables(meta)) {
      checkpoint = Optional.of(CheckpointIndex.read(dir.resolve("variables").resolve("variables")));
    }
    SavedModelDirectory opened = new SavedModelDirectory(dir, meta, checkpoint,
        Files.isRegularFile(dir.resolve("keras_metadata.pb")));
    opened.checkVariableShapes();
    return opened;
  }

  /**
   * Refuses a checkpoint whose tensors do not fit the graph's variables (the variables/ of another
   * model): the runtime would fail while restoring them, naming neither file nor variable. TF1
   * graphs save each variable under its node's name; object graphs through {@link CheckpointKeys}.
   */
  private void checkVariableShapes() {
    if (checkpoint.isEmpty()) {
      return;
    }
    Map<String, NodeDef> variables = new java.util.HashMap<>();
    for (NodeDef n : metaGraph.getGraphDef().getNodeList()) {
      if (n.getOp().equals("VarHandleOp") || n.getOp().equals("VariableV2") || n.getOp().equals("Variable")) {
        variables.put(n.getName(), n);
      }
    }
    Map<String, String> keyByHandle = new java.util.LinkedHashMap<>();
    if (metaGraph.getObjectGraphDef().getNodesCount() == 0) {
      variables.keySet().stream().sorted().forEach(name -> keyByHandle.put(name, name));
    } else {
      CheckpointKeys.forCapturedHandles(this).forEach(r -> keyByHandle.put(r.handle(), r.key()));
    }
    for (Map.Entry<String, String> e : keyByHandle.entrySet()) {
      NodeDef node = variables.get(e.getKey());
      org.tensorflow.proto.BundleEntryProto entry = checkpoint.get().entries().get(e.getValue());
      if (node == null || entry == null || !node.getAttrMap().containsKey("shape")) {
        continue;
      }
      org.tensorflow.proto.TensorShapeProto graphShape = node.getAttrMap().get("shape").getShape();
      if (graphShape.getUnknownRank() || graphShape.getDimList().stream().anyMatch(d -> d.getSize() < 0)) {
        continue;
      }
      List<Long> expected = graphShape.getDimList().stream().map(d -> d.getSize()).toList();
      List<Long> stored = entry.getShape().getDimList().stream().map(d -> d.getSize()).toList();
      if (!expected.equals(stored)) {
        Path index = dir.resolve("variables").resolve("variables.index");
        throw new InvalidModelException(index, index + " stores '" + e.getValue() + "' with shape " + shapeText(stored)
            + " but the graph's variable " + e.getKey() + " is " + shapeText(expected) + ": the variables/ do not"
            + " belong to this saved_model.pb. Re-copy or re-export the SavedModel.");
      }
    }
  }

  private static String shapeText(List<Long> dims) {
    List<String> parts = dims.stream().map(String::valueOf).toList();
    return "(" + String.join(", ", parts) + (parts.size() == 1 ? ",)" : ")");
  }

  public Path dir() {
    return dir;
  }

  /** The chosen MetaGraph (its graph, function library, signatures and object graph). */
  public MetaGraphDef metaGraph() {
    return metaGraph;
  }

  /** The checkpoint index, when the graph has variables. */
  public Optional<CheckpointIndex> checkpoint() {
    return checkpoint;
  }

  /** True when tf_keras wrote {@code keras_metadata.pb} beside the graph. */
  public boolean hasKerasMetadata() {
    return kerasMetadata;
  }

  /** Signatures by name, without the {@code __saved_model_init_op} pseudo-signature. */
  public Map<String, SignatureDef> signatureDefs() {
    return metaGraph.getSignatureDefMap().entrySet().stream()
        .filter(e -> !e.getKey().equals("__saved_model_init_op"))
        .collect(Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue, (a, b) -> a, java.util.TreeMap::new));
  }

  private static Path locate(Path dir) {
    if (!Files.exists(dir)) {
      throw new InvalidModelException(dir, dir + " does not exist. Give the SavedModel directory, the one"
          + " that holds saved_model.pb and variables/.");
    }
    if (!Files.isDirectory(dir)) {
      String hint = dir.getFileName() != null && dir.getFileName().toString().equals("saved_model.pb")
          ? " Give its directory, " + dir.toAbsolutePath().getParent() + "." : "";
      throw new InvalidModelException(dir, dir + " is a file, not a SavedModel directory." + hint);
    }
    Path pb = dir.resolve("saved_model.pb");
    if (Files.isRegularFile(pb)) {
      return pb;
    }
    if (Files.isDirectory(pb)) {
      throw new InvalidModelException(pb, pb + " is a folder, not a file; export the model again (Keras"
          + " model.export() or tf.saved_model.save()) so that saved_model.pb is the serialized SavedModel");
    }
    if (Files.isRegularFile(dir.resolve("saved_model.pbtxt"))) {
      throw new InvalidModelException(dir, dir + " holds a text-format saved_model.pbtxt, which finetune does not"
          + " read. Re-export it in binary form (tf.saved_model.save or Keras model.export()).");
    }
    List<String> nested = new ArrayList<>();
    List<String> listing = new ArrayList<>();
    try (Stream<Path> children = Files.list(dir)) {
      for (Path child : (Iterable<Path>) children.sorted()::iterator) {
        listing.add(child.getFileName().toString() + (Files.isDirectory(child) ? "/" : ""));
        if (Files.isRegularFile(child.resolve("saved_model.pb"))) {
          nested.add(child.toString());
        }
      }
    } catch (IOException e) {
      throw new InvalidModelException(dir, "cannot list " + dir + ": " + e.getMessage(), e);
    }
    if (!nested.isEmpty()) {
      throw new InvalidModelException(dir, dir + " has no saved_model.pb, but " + String.join(", ", nested)
          + (nested.size() == 1 ? " does" : " do") + " (a TF Serving version layout?). Give that directory.");
    }
    String holds = listing.isEmpty() ? "it is empty"
        : "it holds " + String.join(", ", listing.subList(0, Math.min(8, listing.size())))
            + (listing.size() > 8 ? ", ..." : "");
    throw new InvalidModelException(dir, dir + " has no saved_model.pb (" + holds + "). Give the SavedModel"
        + " directory, e.g. the one Keras model.export() or tf.saved_model.save() wrote.");
  }

  private static MetaGraphDef chooseMetaGraph(Path pb, SavedModel model, Set<String> tags) {
    List<String> available = new ArrayList<>();
    for (MetaGraphDef meta : model.getMetaGraphsList()) {
      Set<String> have = new HashSet<>(meta.getMetaInfoDef().getTagsList());
      if (have.equals(tags)) {
        return meta;
      }
      available.add(new TreeSet<>(have).toString());
    }
    throw new InvalidModelException(pb, "no MetaGraph tagged " + new TreeSet<>(tags) + " in " + pb
        + "; it has " + String.join(", ", available), Setting.TAGS, "choose one of those tag sets");
  }

  /** References a complete file satisfies; a truncated or damaged one usually does not. */
  private static void checkConsistent(Path pb, MetaGraphDef meta) {
    if (!meta.hasGraphDef()) {
      throw damaged(pb, "its MetaGraph has no graph", null);
    }
    Set<String> nodes = meta.getGraphDef().getNodeList().stream().map(NodeDef::getName).collect(Collectors.toSet());
    Set<String> functions = meta.getGraphDef().getLibrary().getFunctionList().stream()
        .map(f -> f.getSignature().getName()).collect(Collectors.toSet());
    for (Map.Entry<String, SignatureDef> sig : meta.getSignatureDefMap().entrySet()) {
      for (TensorInfo info : concat(sig.getValue().getInputsMap(), sig.getValue().getOutputsMap())) {
        String node = TensorNames.nodeOf(info.getName());
        if (!info.getName().isEmpty() && !nodes.contains(node)) {
          throw damaged(pb, "signature '" + sig.getKey() + "' names tensor " + info.getName()
              + ", which is not in the graph", null);
        }
      }
    }
    for (NodeDef node : meta.getGraphDef().getNodeList()) {
      checkFunctionRefs(pb, node, functions, "graph node " + node.getName());
    }
    for (FunctionDef f : meta.getGraphDef().getLibrary().getFunctionList()) {
      for (NodeDef node : f.getNodeDefList()) {
        checkFunctionRefs(pb, node, functions, "node " + node.getName() + " of function " + f.getSignature().getName());
      }
    }
    checkObjectGraph(pb, meta);
  }

  /**
   * The object graph's references that the readers follow lie inside it: children and the objects
   * a concrete function captures (its bound inputs) are node ids, and a graph node calling such a
   * function passes at least as many inputs as it captures (the captures come last).
   */
  private static void checkObjectGraph(Path pb, MetaGraphDef meta) {
    SavedObjectGraph objects = meta.getObjectGraphDef();
    int count = objects.getNodesCount();
    for (int id = 0; id < count; id++) {
      for (ObjectReference child : objects.getNodes(id).getChildrenList()) {
        if (child.getNodeId() < 0 || child.getNodeId() >= count) {
          throw damaged(pb, "object " + id + " of its object graph has child '" + child.getLocalName() + "' at node "
              + child.getNodeId() + ", but the object graph has " + count + " nodes", null);
        }
      }
    }
    for (Map.Entry<String, SavedConcreteFunction> f : objects.getConcreteFunctionsMap().entrySet()) {
      for (int id : f.getValue().getBoundInputsList()) {
        if (id < 0 || id >= count) {
          throw damaged(pb, "concrete function " + f.getKey() + " captures object " + id + ", but the object graph"
              + " has " + count + " nodes", null);
        }
      }
    }
    for (NodeDef node : meta.getGraphDef().getNodeList()) {
      AttrValue f = node.getAttrMap().get("f");
      SavedConcreteFunction fn = f == null ? null : objects.getConcreteFunctionsMap().get(f.getFunc().getName());
      int inputs = fn == null ? 0 : VariableResolver.dataInputs(node).size();
      if (fn != null && inputs < fn.getBoundInputsCount()) {
        throw damaged(pb, "graph node " + node.getName() + " calls " + f.getFunc().getName() + " with " + inputs
            + " inputs, but that function captures " + fn.getBoundInputsCount() + " objects", null);
      }
    }
  }

  private static void checkFunctionRefs(Path pb, NodeDef node, Set<String> functions, String where) {
    for (AttrValue value : node.getAttrMap().values()) {
      List<String> names = new ArrayList<>();
      if (value.hasFunc()) {
        names.add(value.getFunc().getName());
      }
      value.getList().getFuncList().forEach(f -> names.add(f.getName()));
      for (String name : names) {
        if (!functions.contains(name)) {
          throw damaged(pb, where + " calls function " + name + ", which is not in the function library", null);
        }
      }
    }
  }

  private static List<TensorInfo> concat(Map<String, TensorInfo> a, Map<String, TensorInfo> b) {
    List<TensorInfo> out = new ArrayList<>(a.values());
    out.addAll(b.values());
    return out;
  }


  private static boolean hasVariables(MetaGraphDef meta) {
    for (NodeDef node : meta.getGraphDef().getNodeList()) {
      switch (node.getOp()) {
        case "VarHandleOp": case "VariableV2": case "Variable":
          return true;
        default:
      }
    }
    return false;
  }

  private static InvalidModelException damaged(Path pb, String why, Throwable cause) {
    return new InvalidModelException(pb, pb + " is damaged or truncated: " + why
        + ". Re-copy it or export the model again.", cause);
  }
}
