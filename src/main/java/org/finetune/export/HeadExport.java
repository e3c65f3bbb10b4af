package org.finetune.export;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.finetune.model.FlatSignature;
import org.finetune.savedmodel.VariableInfo;
import org.finetune.train.HeadGraph;
import org.finetune.train.Trainer;
import org.tensorflow.Graph;
import org.tensorflow.Operand;
import org.tensorflow.Output;
import org.tensorflow.Session;
import org.tensorflow.TensorFlow;
import org.tensorflow.internal.types.registry.TensorTypeRegistry;
import org.tensorflow.op.Op;
import org.tensorflow.op.Ops;
import org.tensorflow.op.train.Restore;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.CollectionDef;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.proto.MetaGraphDef;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.SavedModel;
import org.tensorflow.proto.SaverDef;
import org.tensorflow.proto.SignatureDef;
import org.tensorflow.proto.TensorInfo;
import org.tensorflow.proto.TensorShapeProto;
import org.tensorflow.proto.VariableDef;
import org.tensorflow.types.TString;
import org.tensorflow.types.family.TType;

/**
 * A model with a new head as a SavedModel of its own: the flat graph of the base signature, cut
 * to what the head's features need, the head's ops, a saver, and one signature,
 * {@code serving_default}, from the base signature's inputs to {@code output_0}, the head's
 * output. The graph is plain (no functions to trace, no object graph), the form
 * {@code tf.saved_model.load}, {@code keras.layers.TFSMLayer}, TF Serving and TF Java all load.
 * Checkpoint keys are the variables' Keras names. The weights go straight from the training
 * session to the checkpoint ({@code SaveV2} on the trained variables), not through the JVM.
 */
final class HeadExport {
  static final String OUTPUT_KEY = "output_0";
  static final String SIGNATURE = "serving_default";

  private HeadExport() {}

  /** Writes {@code saved_model.pb} and {@code variables/} into {@code dir}; returns the number of variables. */
  static int write(Trainer trainer, Path dir) throws IOException {
    FlatSignature flat = trainer.flatSignature();
    Trainer.HeadPlacement head = trainer.headPlacement().orElseThrow();
    GraphDef source = flat.graphDef();
    List<String> roots = new ArrayList<>();
    roots.add(head.features());
    flat.inputs().values().forEach(t -> roots.add(flat.local(t)));
    GraphDef pruned = prune(source, roots);
    Set<String> kept = new HashSet<>();
    pruned.getNodeList().forEach(n -> kept.add(n.getName()));

    // Base variables the kept graph reads: checkpoint key (Keras name) -> local read and handle.
    Map<String, String> keyToRead = new LinkedHashMap<>();
    Map<String, String> keyToHandle = new LinkedHashMap<>();
    Map<String, String> keyToTrainedRead = new LinkedHashMap<>();
    Map<String, Boolean> trainable = new LinkedHashMap<>();
    Map<String, NodeDef> nodes = new HashMap<>();
    pruned.getNodeList().forEach(n -> nodes.put(n.getName(), n));
    for (VariableInfo v : trainer.model().info().variables()) {
      String imported = v.handle().isEmpty() ? null : flat.reads().get(v.handle());
      if (imported == null) {
        continue;
      }
      String local = flat.local(imported);
      NodeDef read = nodes.get(nodeOf(local));
      if (read == null || keyToRead.containsKey(v.name())) {
        continue;
      }
      keyToRead.put(v.name(), local);
      keyToHandle.put(v.name(), nodeOf(read.getInput(0)));
      keyToTrainedRead.put(v.name(), imported);
      trainable.put(v.name(), v.trainable());
    }

    MetaGraphDef.Builder meta = MetaGraphDef.newBuilder();
    List<String> keys = new ArrayList<>();
    try (Graph g = new Graph()) {
      g.importGraphDef(pruned);
      Ops tf = Ops.create(g);
      Optional<Output<?>> padding = Optional.ofNullable(flat.inputs().get("padding_mask"))
          .map(t -> g.output(flat.local(t)));
      HeadGraph.Built built = HeadGraph.inference(tf, head.spec(), g.output(head.features()), padding);
      Output<?> output = tf.withName(OUTPUT_KEY).identity(built.output()).asOutput();
      built.reads().forEach((k, r) -> {
        keyToRead.put(k, r);
        keyToHandle.put(k, built.handles().get(k));
        keyToTrainedRead.put(k, head.reads().get(k));
        trainable.put(k, true);
      });
      keys.addAll(keyToRead.keySet());
      String[] slices = new String[keys.size()];
      java.util.Arrays.fill(slices, "");

      // The saver, TF1 style: feed save/Const with a prefix; run the save or the restore.
      Ops save = tf.withSubScope("save");
      Operand<TString> filename = save.withName("Const").constant("model");
      Operand<TString> names = save.withName("tensor_names").constant(java.nio.charset.StandardCharsets.UTF_8, keys.toArray(new String[0]));
      Operand<TString> shapes = save.withName("shape_and_slices").constant(java.nio.charset.StandardCharsets.UTF_8, slices);
      List<Operand<?>> reads = new ArrayList<>();
      List<Class<? extends TType>> types = new ArrayList<>();
      for (String k : keys) {
        Output<?> r = g.output(keyToRead.get(k));
        reads.add(r);
        types.add(TensorTypeRegistry.find(r.dataType()).type());
      }
      Op saveOp = save.withName("SaveV2").train.save(filename, names, shapes, reads);
      Output<?> saveTensor = save.withControlDependencies(List.of(saveOp)).withName("control_dependency")
          .identity(filename).asOutput();
      Restore restore = save.withName("RestoreV2").train.restore(filename, names, shapes, types);
      List<Op> assigns = new ArrayList<>();
      Map<String, String> initializers = new HashMap<>();
      for (int i = 0; i < keys.size(); i++) {
        org.tensorflow.GraphOperation variable = g.operation(keyToHandle.get(keys.get(i)));
        Op assign = assign(save.withName("Assign_" + i), variable, restore.tensors().get(i));
        assigns.add(assign);
        initializers.put(keys.get(i), assign.op().name());
      }
      Op restoreAll = save.withControlDependencies(assigns).withName("restore_all").noOp();

      meta.setGraphDef(g.toGraphDef());
      meta.setSaverDef(SaverDef.newBuilder().setFilenameTensorName(filename.asOutput().op().name() + ":0")
          .setSaveTensorName(saveTensor.op().name() + ":0").setRestoreOpName(restoreAll.op().name())
          .setMaxToKeep(5).setKeepCheckpointEveryNHours(10000).setVersion(SaverDef.CheckpointFormatVersion.V2));
      SignatureDef.Builder signature = SignatureDef.newBuilder().setMethodName("tensorflow/serving/predict");
      for (Map.Entry<String, String> in : flat.inputs().entrySet()) {
        NodeDef placeholder = nodes.get(nodeOf(flat.local(in.getValue())));
        signature.putInputs(in.getKey(), TensorInfo.newBuilder().setName(withIndex(flat.local(in.getValue())))
            .setDtype(placeholder.getAttrMap().getOrDefault("dtype", AttrValue.getDefaultInstance()).getType())
            .setTensorShape(placeholder.getAttrMap().getOrDefault("shape", AttrValue.getDefaultInstance()).getShape())
            .build());
      }
      signature.putOutputs(OUTPUT_KEY, TensorInfo.newBuilder().setName(output.op().name() + ":0")
          .setDtype(DataType.DT_FLOAT).setTensorShape(TensorShapeProto.newBuilder()
              .addDim(TensorShapeProto.Dim.newBuilder().setSize(-1))
              .addDim(TensorShapeProto.Dim.newBuilder().setSize(head.spec().classes()))).build());
      meta.putSignatureDef(SIGNATURE, signature.build());
      CollectionDef.BytesList.Builder all = CollectionDef.BytesList.newBuilder();
      CollectionDef.BytesList.Builder train = CollectionDef.BytesList.newBuilder();
      for (int i = 0; i < keys.size(); i++) {
        String k = keys.get(i);
        VariableDef def = VariableDef.newBuilder().setVariableName(keyToHandle.get(k) + ":0")
            .setInitialValueName(restore.tensors().get(i).asOutput().op().name() + ":" + i)
            .setInitializerName(initializers.get(k)).setSnapshotName(withIndex(keyToRead.get(k)))
            .setIsResource(g.operation(keyToHandle.get(k)).type().equals("VarHandleOp"))
            .setTrainable(trainable.get(k)).build();
        all.addValue(def.toByteString());
        if (trainable.get(k)) {
          train.addValue(def.toByteString());
        }
      }
      meta.putCollectionDef("variables", CollectionDef.newBuilder().setBytesList(all).build());
      meta.putCollectionDef("trainable_variables", CollectionDef.newBuilder().setBytesList(train).build());
    }
    meta.setMetaInfoDef(MetaGraphDef.MetaInfoDef.newBuilder().addTags("serve")
        .setTensorflowVersion(TensorFlow.version()).setTensorflowGitVersion("finetune"));
    SavedModel model = SavedModel.newBuilder().setSavedModelSchemaVersion(1).addMetaGraphs(meta).build();
    Files.write(dir.resolve("saved_model.pb"), model.toByteArray());

    // The weights, from the training session itself.
    Path variables = dir.resolve("variables");
    Files.createDirectories(variables);
    Graph graph = trainer.model().graph();
    Ops tf = Ops.create(graph).withSubScope("finetune_export");
    String[] slices = new String[keys.size()];
    java.util.Arrays.fill(slices, "");
    List<Operand<?>> trained = new ArrayList<>();
    for (String k : keys) {
      trained.add(graph.output(keyToTrainedRead.get(k)));
    }
    Op saveTrained = tf.train.save(tf.constant(variables.resolve("variables").toString()),
        tf.constant(java.nio.charset.StandardCharsets.UTF_8, keys.toArray(new String[0])), tf.constant(java.nio.charset.StandardCharsets.UTF_8, slices), trained);
    Session session = trainer.model().session();
    session.runner().addTarget(saveTrained).run();
    return keys.size();
  }

  /** Restores {@code value} into a resource variable, or a TF1 reference variable. */
  @SuppressWarnings("unchecked")
  private static Op assign(Ops tf, org.tensorflow.GraphOperation variable, Operand<?> value) {
    if (variable.type().equals("VarHandleOp")) {
      return tf.assignVariableOp((Operand<? extends TType>) variable.output(0), value);
    }
    return tf.assign((Operand<TType>) variable.output(0), (Operand<TType>) value);
  }

  /** The nodes {@code roots} depend on (data and control inputs), with the library and versions. */
  static GraphDef prune(GraphDef graph, List<String> roots) {
    Map<String, NodeDef> nodes = new HashMap<>();
    graph.getNodeList().forEach(n -> nodes.put(n.getName(), n));
    Set<String> keep = new HashSet<>();
    ArrayDeque<String> todo = new ArrayDeque<>();
    roots.forEach(r -> todo.add(nodeOf(r)));
    while (!todo.isEmpty()) {
      String name = todo.poll();
      NodeDef n = nodes.get(name);
      if (n == null || !keep.add(name)) {
        continue;
      }
      for (String input : n.getInputList()) {
        todo.add(nodeOf(input));
      }
    }
    GraphDef.Builder out = graph.toBuilder().clearNode();
    for (NodeDef n : graph.getNodeList()) {
      if (keep.contains(n.getName())) {
        out.addNode(n);
      }
    }
    return out.build();
  }

  private static String nodeOf(String tensor) {
    String t = tensor.startsWith("^") ? tensor.substring(1) : tensor;
    int colon = t.indexOf(':');
    return colon < 0 ? t : t.substring(0, colon);
  }

  private static String withIndex(String tensor) {
    return tensor.contains(":") ? tensor : tensor + ":0";
  }
}
