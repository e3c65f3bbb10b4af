package org.finetune.export;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import org.finetune.graph.OpDefs;
import org.finetune.graph.SaveRestoreOps;
import org.finetune.graph.TensorTypes;
import org.finetune.model.FlatSignature;
import org.finetune.savedmodel.Ancestors;
import org.finetune.savedmodel.TensorNames;
import org.finetune.savedmodel.VariableInfo;
import org.finetune.train.HeadGraph;
import org.finetune.train.HeadPlacement;
import org.finetune.train.Trainer;
import org.tensorflow.Graph;
import org.tensorflow.GraphOperation;
import org.tensorflow.Operand;
import org.tensorflow.Output;
import org.tensorflow.TensorFlow;
import org.tensorflow.op.Op;
import org.tensorflow.op.Ops;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.FunctionDef;
import org.tensorflow.proto.FunctionDefLibrary;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.proto.MetaGraphDef;
import org.tensorflow.proto.NameAttrList;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.OpDef;
import org.tensorflow.proto.SavedModel;
import org.tensorflow.proto.SaverDef;
import org.tensorflow.proto.SignatureDef;
import org.tensorflow.proto.TensorInfo;
import org.tensorflow.proto.TensorShapeProto;
import org.tensorflow.types.TString;
import org.tensorflow.types.family.TType;

/**
 * A model with a new head as a SavedModel of its own, in the layout {@code tf.saved_model.save}
 * writes: the inference graph (the base signature flattened and cut where the head reads, then
 * the head) as a function; an object graph with the variables, a {@code serve} endpoint (one
 * tensor, or a dict of tensors for several inputs, as a Keras 3 export takes) and the signature
 * {@code serving_default} → {@code output_0}; a checkpoint with its own object graph; and, for
 * TensorFlow's C++ loader (TF Java, TF Serving), top-level variables, a call of the signature
 * function and a saver. So {@code tf.saved_model.load}, {@code keras.layers.TFSMLayer} (through
 * {@code serve}), TF Serving and TF Java all load it. The weights go straight from the training
 * session to the checkpoint, not through the JVM.
 */
final class HeadExport {
  static final String OUTPUT_KEY = "output_0";
  static final String SIGNATURE = "serving_default";
  static final String SERVE_FUNCTION = "__inference_serve_1";
  static final String SIGNATURE_FUNCTION = "__inference_signature_wrapper_2";
  static final String OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH";

  private HeadExport() {}

  /** A variable of the export: its Keras name, node in the body, read tensor, trained read, dtype, shape. */
  private record Var(String name, String handle, String read, String trained, DataType dtype, TensorShapeProto shape,
      boolean trainable) {
    String key(int i) {
      return "v" + i + "/.ATTRIBUTES/VARIABLE_VALUE";
    }
  }

  /** An input of the signature: key, body placeholder, dtype, shape. */
  private record In(String key, String placeholder, DataType dtype, TensorShapeProto shape) {}

  /** Writes {@code saved_model.pb} and {@code variables/} into {@code dir}; returns the number of variables. */
  static int write(Trainer trainer, Path dir) throws IOException {
    FlatSignature flat = trainer.flatSignature();
    HeadPlacement head = trainer.headPlacement().orElseThrow();
    List<String> roots = new ArrayList<>();
    roots.add(head.features());
    flat.inputs().values().forEach(t -> roots.add(flat.local(t)));
    GraphDef pruned = prune(flat.graphDef(), roots);
    Map<String, NodeDef> nodes = new HashMap<>();
    pruned.getNodeList().forEach(n -> nodes.put(n.getName(), n));
    int frames = head.spec().frames();
    if (frames > 0) {
      if (flat.inputs().size() != 1) {
        throw new IllegalArgumentException("a model over clips needs a signature with one (image) input; "
            + flat.signature() + " has " + flat.inputs().keySet());
      }
      pruned = takeClips(pruned, nodes.get(TensorNames.nodeOf(flat.local(flat.inputs().values().iterator().next()))), frames);
      nodes.clear();
      pruned.getNodeList().forEach(n -> nodes.put(n.getName(), n));
    }

    // Inputs, sorted by key (the order a signature's arguments take).
    List<In> inputs = new ArrayList<>();
    for (Map.Entry<String, String> in : new TreeMap<>(flat.inputs()).entrySet()) {
      NodeDef p = nodes.get(TensorNames.nodeOf(flat.local(in.getValue())) + (frames > 0 ? CLIPS_SUFFIX : ""));
      inputs.add(new In(in.getKey(), p.getName(), p.getAttrMap().get("dtype").getType(),
          p.getAttrMap().getOrDefault("shape", AttrValue.getDefaultInstance()).getShape()));
    }
    List<Var> vars = new ArrayList<>();
    Set<String> seen = new HashSet<>();
    for (VariableInfo v : trainer.model().info().variables()) {
      String imported = v.handle().isEmpty() ? null : flat.reads().get(v.handle());
      if (imported == null) {
        continue;
      }
      NodeDef read = nodes.get(TensorNames.nodeOf(flat.local(imported)));
      if (read == null || !seen.add(v.name())) {
        continue;
      }
      NodeDef handle = nodes.get(TensorNames.nodeOf(read.getInput(0)));
      vars.add(new Var(v.name(), handle.getName(), flat.local(imported), imported,
          handle.getAttrMap().get("dtype").getType(), shapeOf(handle), v.trainable()));
    }

    GraphDef body;
    String output;
    try (Graph g = new Graph()) {
      g.importGraphDef(pruned);
      Ops tf = Ops.create(g);
      Optional<Output<?>> padding = Optional.ofNullable(flat.inputs().get("padding_mask"))
          .map(t -> g.output(flat.local(t)));
      HeadGraph.Built built = HeadGraph.inference(tf, head.spec(), g.output(head.features()), padding);
      output = tf.withName(OUTPUT_KEY).identity(built.output()).op().name() + ":0";
      for (String k : built.reads().keySet()) {
        GraphOperation h = g.operation(built.handles().get(k));
        vars.add(new Var(k, h.name(), built.reads().get(k), head.reads().get(k), DataType.DT_FLOAT,
            shapeProto(h.attributes().getAttrShape("shape").asArray()), true));
      }
      body = g.toGraphDef();
    }
    FunctionDef serve = function(body, inputs, vars, output, SERVE_FUNCTION);
    FunctionDef signatureFn = serve.toBuilder().setSignature(serve.getSignature().toBuilder()
        .setName(SIGNATURE_FUNCTION)).build();
    FunctionDefLibrary.Builder library = body.getLibrary().toBuilder().addFunction(serve).addFunction(signatureFn);

    MetaGraphDef.Builder meta = loaderGraph(library, body.getVersions(), inputs, vars);
    SignatureDef.Builder signature = SignatureDef.newBuilder().setMethodName("tensorflow/serving/predict");
    for (In in : inputs) {
      signature.putInputs(in.key(), TensorInfo.newBuilder().setName("serving_default_" + in.key() + ":0")
          .setDtype(in.dtype()).setTensorShape(in.shape()).build());
    }
    TensorShapeProto outShape = TensorShapeProto.newBuilder().addDim(TensorShapeProto.Dim.newBuilder().setSize(-1))
        .addDim(TensorShapeProto.Dim.newBuilder().setSize(head.spec().classes())).build();
    signature.putOutputs(OUTPUT_KEY, TensorInfo.newBuilder().setName("StatefulPartitionedCall:0")
        .setDtype(DataType.DT_FLOAT).setTensorShape(outShape).build());
    meta.putSignatureDef(SIGNATURE, signature.build());
    meta.setMetaInfoDef(MetaGraphDef.MetaInfoDef.newBuilder().addTags("serve")
        .setTensorflowVersion(TensorFlow.version()).setTensorflowGitVersion("finetune"));
    meta.setObjectGraphDef(ObjectGraphs.savedModel(inputs.stream().map(i -> new ObjectGraphs.Input(i.key(), i.dtype(),
        i.shape())).toList(), vars.stream().map(v -> new ObjectGraphs.Variable(v.name(), v.dtype(), v.shape(),
        v.trainable())).toList(), outShape, SERVE_FUNCTION, SIGNATURE_FUNCTION));
    SavedModel model = SavedModel.newBuilder().setSavedModelSchemaVersion(1).addMetaGraphs(meta).build();
    Files.write(dir.resolve("saved_model.pb"), model.toByteArray());

    writeWeights(trainer, dir.resolve("variables"), vars);
    return vars.size();
  }

  /**
   * The top level, for the C++ loader: a placeholder per input, a handle per variable, a call of
   * the signature function, and a saver; as a MetaGraphDef with its graph and saver set.
   */
  private static MetaGraphDef.Builder loaderGraph(FunctionDefLibrary.Builder library,
      org.tensorflow.proto.VersionDef versions, List<In> inputs, List<Var> vars) {
    MetaGraphDef.Builder meta = MetaGraphDef.newBuilder();
    try (Graph g = new Graph()) {
      // The top level, for the C++ loader: placeholders, variables, a call of the signature function, a saver.
      GraphDef.Builder top = GraphDef.newBuilder().setLibrary(library).setVersions(versions);
      NodeDef.Builder call = NodeDef.newBuilder().setName("StatefulPartitionedCall").setOp("StatefulPartitionedCall");
      AttrValue.ListValue.Builder tin = AttrValue.ListValue.newBuilder();
      for (In in : inputs) {
        top.addNode(NodeDef.newBuilder().setName("serving_default_" + in.key()).setOp("Placeholder")
            .putAttr("dtype", AttrValue.newBuilder().setType(in.dtype()).build())
            .putAttr("shape", AttrValue.newBuilder().setShape(in.shape()).build()));
        call.addInput("serving_default_" + in.key());
        tin.addType(in.dtype());
      }
      for (int i = 0; i < vars.size(); i++) {
        Var v = vars.get(i);
        top.addNode(NodeDef.newBuilder().setName("variable_" + i).setOp("VarHandleOp")
            .putAttr("dtype", AttrValue.newBuilder().setType(v.dtype()).build())
            .putAttr("shape", AttrValue.newBuilder().setShape(v.shape()).build())
            .putAttr("shared_name", AttrValue.newBuilder().setS(com.google.protobuf.ByteString.copyFromUtf8(v.name()))
                .build())
            .putAttr("container", AttrValue.newBuilder().setS(com.google.protobuf.ByteString.EMPTY).build())
            .putAttr("allowed_devices", AttrValue.newBuilder().setList(AttrValue.ListValue.getDefaultInstance()).build()));
        call.addInput("variable_" + i);
        tin.addType(DataType.DT_RESOURCE);
      }
      call.putAttr("Tin", AttrValue.newBuilder().setList(tin).build())
          .putAttr("Tout", AttrValue.newBuilder().setList(AttrValue.ListValue.newBuilder().addType(DataType.DT_FLOAT))
              .build())
          .putAttr("f", AttrValue.newBuilder().setFunc(NameAttrList.newBuilder().setName(SIGNATURE_FUNCTION)).build())
          .putAttr("config", AttrValue.newBuilder().setS(com.google.protobuf.ByteString.EMPTY).build())
          .putAttr("config_proto", AttrValue.newBuilder().setS(com.google.protobuf.ByteString.EMPTY).build())
          .putAttr("executor_type", AttrValue.newBuilder().setS(com.google.protobuf.ByteString.EMPTY).build());
      top.addNode(call);
      g.importGraphDef(top.build());
      Ops tf = Ops.create(g);
      Ops save = tf.withSubScope("save");
      Map<String, String> variables = new LinkedHashMap<>();
      for (int i = 0; i < vars.size(); i++) {
        variables.put(vars.get(i).key(i), "variable_" + i);
      }
      Operand<TString> filename = save.withName("Const").constant("model");
      SaveRestoreOps ops = SaveRestoreOps.build(save, g, filename, variables);
      Output<?> saveTensor = save.withControlDependencies(List.of(ops.save())).withName("control_dependency")
          .identity(filename).asOutput();
      Op restoreAll = ops.restore();
      meta.setGraphDef(g.toGraphDef().toBuilder().setLibrary(library));
      meta.setSaverDef(SaverDef.newBuilder().setFilenameTensorName(filename.asOutput().op().name() + ":0")
          .setSaveTensorName(saveTensor.op().name() + ":0").setRestoreOpName(restoreAll.op().name())
          .setMaxToKeep(5).setKeepCheckpointEveryNHours(10000).setVersion(SaverDef.CheckpointFormatVersion.V2));
    }
    return meta;
  }

  /** The weights, from the training session itself, with the checkpoint's object graph, into {@code variables}. */
  private static void writeWeights(Trainer trainer, Path variables, List<Var> vars) throws IOException {
    Files.createDirectories(variables);
    Graph graph = trainer.model().graph();
    Ops tf = Ops.create(graph).withSubScope("finetune_export");
    List<String> keys = new ArrayList<>();
    List<Operand<?>> values = new ArrayList<>();
    for (int i = 0; i < vars.size(); i++) {
      keys.add(vars.get(i).key(i));
      values.add(graph.output(vars.get(i).trained()));
    }
    keys.add(OBJECT_GRAPH_KEY);
    byte[] objectGraph = ObjectGraphs.checkpoint(vars.stream().map(Var::name).toList()).toByteArray();
    try (TString graphBytes = TString.tensorOfBytes(org.tensorflow.ndarray.NdArrays.scalarOfObject(objectGraph))) {
      values.add(tf.constantOf(graphBytes));
    }
    String[] slices = new String[keys.size()];
    java.util.Arrays.fill(slices, "");
    Op saveTrained = tf.train.save(tf.constant(variables.resolve("variables").toString()),
        tf.constant(StandardCharsets.UTF_8, keys.toArray(new String[0])), tf.constant(StandardCharsets.UTF_8, slices),
        values);
    trainer.model().session().runner().addTarget(saveTrained).run();
  }

  /** The name of the clip input beside the frame input it replaces. */
  static final String CLIPS_SUFFIX = "_clips";

  /**
   * The body with its frame input {@code [n, h, w, c]} fed from a clip input
   * {@code [clips, frames, h, w, c]} (named {@code <input>_clips}): the frame placeholder becomes a
   * reshape of the clips to {@code [clips * frames, h, w, c]}, frames of a clip consecutive, which
   * is the layout training fed.
   */
  private static GraphDef takeClips(GraphDef body, NodeDef input, int frames) {
    TensorShapeProto frameShape = input.getAttrMap().get("shape").getShape();
    if (frameShape.getUnknownRank() || frameShape.getDimCount() != 4) {
      throw new IllegalArgumentException("a model over clips needs an image input of rank 4; " + input.getName()
          + " has shape " + frameShape);
    }
    TensorShapeProto.Builder clipShape = TensorShapeProto.newBuilder()
        .addDim(TensorShapeProto.Dim.newBuilder().setSize(-1)).addDim(TensorShapeProto.Dim.newBuilder().setSize(frames));
    for (int i = 1; i < 4; i++) {
      clipShape.addDim(frameShape.getDim(i));
    }
    GraphDef reshape;
    try (Graph g = new Graph()) {
      Ops tf = Ops.create(g);
      DataType dtype = input.getAttrMap().get("dtype").getType();
      @SuppressWarnings("unchecked")
      Class<TType> type = (Class<TType>) TensorTypes.of(dtype);
      long[] dims = new long[5];
      for (int i = 0; i < 5; i++) {
        dims[i] = clipShape.getDim(i).getSize();
      }
      Operand<TType> clips = tf.withName(input.getName() + CLIPS_SUFFIX).placeholder(type,
          org.tensorflow.op.core.Placeholder.shape(org.tensorflow.ndarray.Shape.of(dims)));
      Ops scope = tf.withSubScope(input.getName() + CLIPS_SUFFIX + "_reshape");
      // [-1] followed by the clip's frame dimensions (height, width, channels), known or not.
      Operand<org.tensorflow.types.TInt32> frameDims = scope.stridedSlice(scope.shape(clips), scope.constant(new int[] {2}),
          scope.constant(new int[] {5}), scope.constant(new int[] {1}));
      Operand<org.tensorflow.types.TInt32> target = scope.concat(List.of(scope.constant(new int[] {-1}), frameDims),
          scope.constant(0));
      tf.withName(input.getName()).reshape(clips, target);
      reshape = g.toGraphDef();
    }
    GraphDef.Builder out = body.toBuilder().clearNode();
    for (NodeDef n : body.getNodeList()) {
      if (!n.getName().equals(input.getName())) {
        out.addNode(n);
      }
    }
    reshape.getNodeList().forEach(out::addNode);
    return out.build();
  }

  /**
   * The body graph as a function: the inputs (sorted by key) and then one resource per variable
   * become arguments; placeholders and variable handles leave the body; tensor names take the
   * function form ({@code node:output_arg:index}).
   */
  static FunctionDef function(GraphDef body, List<In> inputs, List<Var> vars, String output, String name) {
    OpDefs defs = OpDefs.runtime();
    Map<String, String> argOf = new HashMap<>();
    OpDef.Builder sig = OpDef.newBuilder().setName(name).setIsStateful(true);
    for (In in : inputs) {
      String arg = argName(in.key());
      sig.addInputArg(OpDef.ArgDef.newBuilder().setName(arg).setType(in.dtype()));
      argOf.put(in.placeholder(), arg);
    }
    for (int i = 0; i < vars.size(); i++) {
      String arg = "resource_" + i;
      sig.addInputArg(OpDef.ArgDef.newBuilder().setName(arg).setType(DataType.DT_RESOURCE));
      argOf.put(vars.get(i).handle(), arg);
    }
    sig.addOutputArg(OpDef.ArgDef.newBuilder().setName(OUTPUT_KEY).setType(DataType.DT_FLOAT));
    Map<String, NodeDef> nodes = new HashMap<>();
    body.getNodeList().forEach(n -> nodes.put(n.getName(), n));
    // TF1 reference variables' reads (Identity of a VariableV2) become ReadVariableOps of resources.
    Map<String, NodeDef> rewritten = new HashMap<>();
    for (NodeDef n : body.getNodeList()) {
      if (n.getOp().equals("Identity") && n.getInputCount() > 0 && argOf.containsKey(TensorNames.nodeOf(n.getInput(0)))
          && nodes.get(TensorNames.nodeOf(n.getInput(0))).getOp().equals("VariableV2")) {
        NodeDef read = NodeDef.newBuilder().setName(n.getName()).setOp("ReadVariableOp")
            .addInput(argOf.get(TensorNames.nodeOf(n.getInput(0))))
            .putAttr("dtype", AttrValue.newBuilder().setType(n.getAttrMap().get("T").getType()).build()).build();
        rewritten.put(n.getName(), read);
        nodes.put(n.getName(), read);
      }
    }
    FunctionDef.Builder f = FunctionDef.newBuilder();
    for (NodeDef n : body.getNodeList()) {
      if (argOf.containsKey(n.getName())) {
        continue;
      }
      if (rewritten.containsKey(n.getName())) {
        f.addNodeDef(rewritten.get(n.getName()));
        continue;
      }
      NodeDef.Builder copy = n.toBuilder().clearInput();
      for (String input : n.getInputList()) {
        String t = translate(input, argOf, nodes, defs);
        if (t != null) {
          copy.addInput(t);
        }
      }
      f.addNodeDef(copy);
    }
    f.setSignature(sig);
    f.putRet(OUTPUT_KEY, translate(output, argOf, nodes, defs));
    return f.build();
  }

  private static String translate(String ref, Map<String, String> argOf, Map<String, NodeDef> nodes, OpDefs defs) {
    if (ref.startsWith("^")) {
      String node = ref.substring(1);
      return argOf.containsKey(node) ? null : ref;
    }
    String node = TensorNames.nodeOf(ref);
    int index = ref.contains(":") ? Integer.parseInt(ref.substring(ref.lastIndexOf(':') + 1)) : 0;
    if (argOf.containsKey(node)) {
      return argOf.get(node);
    }
    return node + ":" + defs.functionOutput(nodes.get(node), index);
  }

  static String argName(String key) {
    String s = key.toLowerCase(java.util.Locale.ROOT).replaceAll("[^a-z0-9_]", "_");
    return s.isEmpty() || !Character.isLetter(s.charAt(0)) ? "arg_" + s : s;
  }

  /** The nodes {@code roots} depend on (data and control inputs), with the library and versions. */
  static GraphDef prune(GraphDef graph, List<String> roots) {
    Set<String> keep = Ancestors.of(graph.getNodeList(), roots, Ancestors.Edges.DATA_AND_CONTROL);
    GraphDef.Builder out = graph.toBuilder().clearNode();
    for (NodeDef n : graph.getNodeList()) {
      if (keep.contains(n.getName())) {
        out.addNode(n);
      }
    }
    return out.build();
  }

  private static TensorShapeProto shapeOf(NodeDef handle) {
    return handle.getAttrMap().getOrDefault("shape", AttrValue.getDefaultInstance()).getShape();
  }

  static TensorShapeProto shapeProto(long[] dims) {
    TensorShapeProto.Builder b = TensorShapeProto.newBuilder();
    for (long d : dims) {
      b.addDim(TensorShapeProto.Dim.newBuilder().setSize(d));
    }
    return b.build();
  }

}
