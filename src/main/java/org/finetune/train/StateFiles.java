package org.finetune.train;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.finetune.graph.SaveRestoreOps;
import org.tensorflow.Graph;
import org.tensorflow.Session;
import org.tensorflow.exceptions.TensorFlowException;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.Placeholder;
import org.tensorflow.types.TString;

/**
 * A trainer's state written to and read from TensorFlow checkpoints, straight from the runtime:
 * save and restore ops over the state variables, rebuilt only when that set changes (a new
 * stage's optimizer slots).
 */
final class StateFiles {
  private final Graph graph;
  private final Session session;
  private final Ops tf;
  private Built built;

  /** The ops for one set of state variables. */
  private record Built(List<String> keys, String prefix, String save, String restore) {}

  StateFiles(Graph graph, Session session, Ops tf) {
    this.graph = graph;
    this.session = session;
    this.tf = tf;
  }

  /** Writes {@code state} (variable nodes by checkpoint key) at {@code prefix}. */
  void save(Map<String, String> state, Path prefix) {
    Built ops = ops(state);
    try (TString p = TString.scalarOf(prefix.toString())) {
      session.runner().feed(ops.prefix(), p).addTarget(ops.save()).run();
    }
  }

  /**
   * Reads {@code state} back from the checkpoint at {@code prefix}.
   *
   * @throws IllegalArgumentException when the checkpoint lacks one of the variables
   */
  void restore(Map<String, String> state, Path prefix) {
    Built ops = ops(state);
    try (TString p = TString.scalarOf(prefix.toString())) {
      session.runner().feed(ops.prefix(), p).addTarget(ops.restore()).run();
    } catch (TensorFlowException e) {
      throw new IllegalArgumentException("the checkpoint " + prefix + " does not hold this trainer's state: "
          + e.getMessage().lines().findFirst().orElse(""), e);
    }
  }

  private Built ops(Map<String, String> state) {
    List<String> keys = new ArrayList<>(state.keySet());
    if (built != null && built.keys().equals(keys)) {
      return built;
    }
    Ops scope = tf.withSubScope("state_" + keys.size());
    Placeholder<TString> prefix = scope.withName("prefix").placeholder(TString.class, Placeholder.shape(Shape.scalar()));
    SaveRestoreOps ops = SaveRestoreOps.build(scope, graph, prefix, state);
    built = new Built(keys, prefix.op().name() + ":0", ops.save().op().name(), ops.restore().op().name());
    return built;
  }
}
