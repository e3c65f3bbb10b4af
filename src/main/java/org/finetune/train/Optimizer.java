package org.finetune.train;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.tensorflow.Graph;
import org.tensorflow.Operand;
import org.tensorflow.Session;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.op.Op;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.ReadVariableOp;
import org.tensorflow.op.core.VarHandleOp;
import org.tensorflow.op.train.ResourceApplyKerasMomentum;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TInt64;
import org.tensorflow.types.family.TType;

/**
 * Applies one optimizer's updates to resource variables with TensorFlow's raw resource ops, with
 * Keras 3's update rules. It owns its slot variables (momentum, Adam's m and v) and its step
 * counter, all created in the model's graph; a variable's slots are made the first time an update
 * for it is built and are shared by every later stage, so optimizer state survives a change of
 * stage. Nothing scans the graph for variables: callers pass the list.
 */
final class Optimizer {
  /** A variable to update: its handle and its shared read in the flat graph. */
  record Target(String name, String handle, String read, Shape shape, double rateFactor, boolean decay) {}

  private final OptimizerSpec spec;
  private final Graph graph;
  private final Session session;
  private final Ops tf;
  private final Map<String, List<Operand<? extends TType>>> slots = new HashMap<>();
  private final VarHandleOp iterations;
  private final String iterationsRead;
  private int created;

  Optimizer(OptimizerSpec spec, Graph graph, Session session, String scope) {
    this.spec = spec;
    this.graph = graph;
    this.session = session;
    this.tf = Ops.create(graph).withSubScope(scope);
    this.iterations = newVariable(TInt64.class, Shape.scalar(), "iterations");
    session.runner().addTarget(tf.assignVariableOp(iterations, tf.constant(0L))).run();
    this.iterationsRead = tf.withName("iterations_value").readVariableOp(iterations, TInt64.class).op().name() + ":0";
  }

  OptimizerSpec spec() {
    return spec;
  }

  /** The step counter (Keras's {@code optimizer.iterations}) as a tensor name to fetch. */
  String iterationsRead() {
    return iterationsRead;
  }

  /**
   * Builds the update of {@code targets} with {@code gradients} (same order) and the step-counter
   * increment after them; returns the op that runs it all.
   *
   * @param learningRate the base learning rate (a fed scalar); each target scales it by its factor
   */
  @SuppressWarnings("unchecked")
  Op applyOp(Ops scope, List<Target> targets, List<Operand<TFloat32>> gradients, Operand<TFloat32> learningRate) {
    for (Target t : targets) {
      ensureSlots(t);
    }
    Operand<TInt64> step = scope.readVariableOp(iterations, TInt64.class);
    Operand<TFloat32> localStep = scope.dtypes.cast(scope.math.add(step, scope.constant(1L)), TFloat32.class);
    List<Op> updates = new ArrayList<>();
    for (int i = 0; i < targets.size(); i++) {
      Target t = targets.get(i);
      Operand<? extends TType> handle = (Operand<? extends TType>) graph.operation(nodeOf(t.handle())).output(0);
      Operand<TFloat32> grad = gradients.get(i);
      Operand<TFloat32> lr = t.rateFactor() == 1.0 ? learningRate
          : scope.math.mul(learningRate, scope.constant((float) t.rateFactor()));
      List<Operand<? extends TType>> s = slots.get(t.name());
      if (spec instanceof OptimizerSpec.Sgd sgd) {
        if (sgd.momentum() == 0) {
          updates.add(scope.train.resourceApplyGradientDescent(handle, lr, grad));
        } else {
          updates.add(scope.train.resourceApplyKerasMomentum(handle, s.get(0), lr, grad,
              scope.constant((float) sgd.momentum()), ResourceApplyKerasMomentum.useNesterov(sgd.nesterov())));
        }
      } else if (spec instanceof OptimizerSpec.Adam adam) {
        updates.add(adam(scope, handle, s, lr, grad, localStep, adam.beta1(), adam.beta2(), adam.epsilon()));
      } else if (spec instanceof OptimizerSpec.AdamW w) {
        Ops ordered = scope;
        if (t.decay() && w.weightDecay() > 0) {
          // Keras applies the decoupled decay before the Adam step: w -= w * decay * lr.
          Operand<TFloat32> w0 = (Operand<TFloat32>) graph.output(t.read());
          Op decay = scope.assignSubVariableOp(handle,
              scope.math.mul(w0, scope.math.mul(lr, scope.constant((float) w.weightDecay()))));
          ordered = scope.withControlDependencies(List.of(decay));
        }
        updates.add(adam(ordered, handle, s, lr, grad, localStep, w.beta1(), w.beta2(), w.epsilon()));
      }
    }
    Op increment = scope.withControlDependencies(updates).assignAddVariableOp(iterations, scope.constant(1L));
    return scope.withControlDependencies(List.of(increment)).withName("train_step").noOp();
  }

  private Op adam(Ops scope, Operand<? extends TType> handle, List<Operand<? extends TType>> s, Operand<TFloat32> lr,
      Operand<TFloat32> grad, Operand<TFloat32> localStep, double beta1, double beta2, double epsilon) {
    Operand<TFloat32> b1 = scope.constant((float) beta1);
    Operand<TFloat32> b2 = scope.constant((float) beta2);
    return scope.train.resourceApplyAdam(handle, s.get(0), s.get(1), scope.math.pow(b1, localStep),
        scope.math.pow(b2, localStep), lr, b1, b2, scope.constant((float) epsilon), grad);
  }

  private void ensureSlots(Target t) {
    if (slots.containsKey(t.name())) {
      return;
    }
    int count = spec instanceof OptimizerSpec.Sgd sgd ? (sgd.momentum() == 0 ? 0 : 1) : 2;
    List<Operand<? extends TType>> list = new ArrayList<>();
    Session.Runner init = session.runner();
    for (int i = 0; i < count; i++) {
      VarHandleOp slot = newVariable(TFloat32.class, t.shape(), "slot_" + i);
      init.addTarget(tf.assignVariableOp(slot, tf.zeros(tf.constant(t.shape()), TFloat32.class)));
      list.add(slot);
    }
    if (count > 0) {
      init.run();
    }
    slots.put(t.name(), list);
  }

  /** A fresh resource variable whose shared name no other variable in the process uses. */
  private <T extends TType> VarHandleOp newVariable(Class<T> type, Shape shape, String what) {
    String shared = "finetune_" + Integer.toHexString(System.identityHashCode(this)) + "_" + what + "_" + (created++);
    return tf.withName(what + "_" + created).varHandleOp(type, shape, VarHandleOp.sharedName(shared));
  }

  /** Slot values of one variable, for checkpoints and tests: tensor names to fetch. */
  List<String> slotReads(String variable) {
    List<String> out = new ArrayList<>();
    for (Operand<? extends TType> slot : slots.getOrDefault(variable, List.of())) {
      ReadVariableOp<TFloat32> r = tf.readVariableOp(slot, TFloat32.class);
      out.add(r.op().name() + ":0");
    }
    return out;
  }

  static String nodeOf(String tensor) {
    int colon = tensor.indexOf(':');
    return colon < 0 ? tensor : tensor.substring(0, colon);
  }
}
