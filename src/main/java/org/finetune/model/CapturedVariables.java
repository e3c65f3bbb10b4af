package org.finetune.model;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.finetune.savedmodel.CheckpointKeys;
import org.finetune.savedmodel.SavedModelDirectory;
import org.tensorflow.Graph;
import org.tensorflow.GraphOperation;
import org.tensorflow.Operand;
import org.tensorflow.Result;
import org.tensorflow.Session;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.VarIsInitializedOp;
import org.tensorflow.op.train.Restore;
import org.tensorflow.types.TBool;
import org.tensorflow.types.family.TType;

/**
 * Makes sure every variable handle the model's functions capture holds its saved value after a
 * load. TensorFlow's C++ loader runs only the graph's restore op, which for some export paths
 * ({@code tf.saved_model.save} of a Keras 3 model) fills other handles than those the serving
 * function reads; those are restored here from their checkpoint keys ({@link CheckpointKeys}).
 */
final class CapturedVariables {
  private CapturedVariables() {}

  /** Restores the captured handles that the load left uninitialised; returns how many it restored. */
  static int restoreMissing(SavedModelDirectory files, Graph graph, Session session) {
    List<CheckpointKeys.Restore> candidates = new ArrayList<>();
    for (CheckpointKeys.Restore r : CheckpointKeys.forCapturedHandles(files)) {
      GraphOperation op = graph.operation(r.handle());
      if (op != null && op.type().equals("VarHandleOp")) {
        candidates.add(r);
      }
    }
    if (candidates.isEmpty()) {
      return 0;
    }
    Ops tf = Ops.create(graph).withSubScope("finetune_restore_check");
    Session.Runner check = session.runner();
    List<VarIsInitializedOp> probes = new ArrayList<>();
    for (CheckpointKeys.Restore r : candidates) {
      VarIsInitializedOp probe = tf.varIsInitializedOp(handle(graph, r.handle()));
      probes.add(probe);
      check.fetch(probe);
    }
    List<CheckpointKeys.Restore> missing = new ArrayList<>();
    try (Result result = check.run()) {
      for (int i = 0; i < candidates.size(); i++) {
        if (!((TBool) result.get(i)).getBoolean()) {
          missing.add(candidates.get(i));
        }
      }
    }
    if (missing.isEmpty()) {
      return 0;
    }
    Path prefix = files.dir().resolve("variables").resolve("variables");
    Ops restoreScope = Ops.create(graph).withSubScope("finetune_restore");
    String[] keys = missing.stream().map(CheckpointKeys.Restore::key).toArray(String[]::new);
    String[] slices = new String[keys.length];
    java.util.Arrays.fill(slices, "");
    List<Class<? extends TType>> types = new ArrayList<>();
    for (CheckpointKeys.Restore r : missing) {
      types.add(org.finetune.graph.TensorTypes.of(r.dtype()));
    }
    Restore restore = restoreScope.train.restore(restoreScope.constant(prefix.toString()),
        restoreScope.constant(StandardCharsets.UTF_8, keys), restoreScope.constant(StandardCharsets.UTF_8, slices), types);
    Session.Runner assign = session.runner();
    for (int i = 0; i < missing.size(); i++) {
      assign.addTarget(restoreScope.assignVariableOp(handle(graph, missing.get(i).handle()),
          restore.tensors().get(i)));
    }
    assign.run();
    return missing.size();
  }

  @SuppressWarnings("unchecked")
  private static Operand<? extends TType> handle(Graph graph, String name) {
    return (Operand<? extends TType>) graph.operation(name).output(0);
  }
}
