package org.finetune.train;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.finetune.savedmodel.TensorNames;
import org.tensorflow.Graph;
import org.tensorflow.Operand;
import org.tensorflow.Session;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.op.Op;
import org.tensorflow.op.Ops;
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

  /**
   * The optimizer's state as variable nodes by checkpoint key: {@code optimizer/iterations} and
   * {@code optimizer/<variable>/slot_<i>} (momentum; Adam's m and v) for the slots made so far.
   */
  Map<String, String> stateVariables() {
    Map<String, String> out = new java.util.LinkedHashMap<>();
    out.put("optimizer/iterations", iterations.op().name());
    slots.forEach((name, list) -> {
      for (int i = 0; i < list.size(); i++) {
        out.put("optimizer/" + name + "/slot_" + i, list.get(i).asOutput().op().name());
      }
    });
    return out;
  }

  /** The step counter (Keras's {@code optimizer.iterations}) as a tensor name to fetch. */
  String iterationsRead() {
    return iterationsRead;
  }

  /**
   * Builds the update of {@code targets} with {@code gradients} (same order) and the step-counter
   * increment after them; returns the op that runs it all.
   *
   * @param squares for Adam, each target's second-moment term where it is not the gradient's
   *     square (a table read by row gathers, see {@link GatheredRows}); null elsewhere
   * @param learningRate the base learning rate (a fed scalar); each target scales it by its factor
   */
  @SuppressWarnings("unchecked")
  Op applyOp(Ops scope, List<Target> targets, List<Operand<TFloat32>> gradients, List<Operand<TFloat32>> squares,
      Operand<TFloat32> learningRate) {
    ensureSlots(targets);
    Operand<TInt64> step = scope.readVariableOp(iterations, TInt64.class);
    Operand<TFloat32> localStep = scope.dtypes.cast(scope.math.add(step, scope.constant(1L)), TFloat32.class);
    List<Op> updates = new ArrayList<>();
    for (int i = 0; i < targets.size(); i++) {
      Target t = targets.get(i);
      Operand<? extends TType> handle = (Operand<? extends TType>) graph.operation(TensorNames.nodeOf(t.handle())).output(0);
      Operand<TFloat32> grad = gradients.get(i);
      Operand<TFloat32> lr = t.rateFactor() == 1.0 ? learningRate
          : scope.math.mul(learningRate, scope.constant((float) t.rateFactor()));
      List<Operand<? extends TType>> s = slots.get(t.name());
      if (isReference(t)) {
        updates.add(referenceUpdate(scope, (Operand<TFloat32>) handle, s, lr, grad, localStep, t));
        continue;
      }
      if (spec instanceof OptimizerSpec.Sgd sgd) {
        if (sgd.momentum() == 0) {
          updates.add(scope.train.resourceApplyGradientDescent(handle, lr, grad));
        } else {
          updates.add(scope.train.resourceApplyKerasMomentum(handle, s.get(0), lr, grad,
              scope.constant((float) sgd.momentum()), ResourceApplyKerasMomentum.useNesterov(sgd.nesterov())));
        }
      } else if (spec instanceof OptimizerSpec.Adam adam) {
        updates.add(adam(scope, handle, s, lr, grad, squares.get(i), localStep, adam.beta1(), adam.beta2(),
            adam.epsilon()));
      } else if (spec instanceof OptimizerSpec.AdamW w) {
        Ops ordered = scope;
        if (t.decay() && w.weightDecay() > 0) {
          // Keras applies the decoupled decay before the Adam step: w -= w * decay * lr.
          Operand<TFloat32> w0 = (Operand<TFloat32>) graph.output(t.read());
          // Keras: variable.assign(variable - variable * wd * lr)
          Op decay = scope.assignSubVariableOp(handle,
              scope.math.mul(scope.math.mul(w0, scope.constant((float) w.weightDecay())), lr));
          ordered = scope.withControlDependencies(List.of(decay));
        }
        updates.add(adam(ordered, handle, s, lr, grad, squares.get(i), localStep, w.beta1(), w.beta2(), w.epsilon()));
      }
    }
    Op increment = scope.withControlDependencies(updates).assignAddVariableOp(iterations, scope.constant(1L));
    return scope.withControlDependencies(List.of(increment)).withName("train_step").noOp();
  }

  /**
   * TF1 reference variables ({@code VariableV2}) take the reference ops. Momentum there is
   * TensorFlow's form ({@code accum = m * accum + g; w -= lr * accum}), equal to Keras's while the
   * learning rate is constant.
   */
  @SuppressWarnings("unchecked")
  private Op referenceUpdate(Ops scope, Operand<TFloat32> var, List<Operand<? extends TType>> s, Operand<TFloat32> lr,
      Operand<TFloat32> grad, Operand<TFloat32> localStep, Target t) {
    if (spec instanceof OptimizerSpec.Sgd sgd) {
      if (sgd.momentum() == 0) {
        return scope.train.applyGradientDescent(var, lr, grad);
      }
      return scope.train.applyMomentum(var, (Operand<TFloat32>) s.get(0), lr, grad,
          scope.constant((float) sgd.momentum()), org.tensorflow.op.train.ApplyMomentum.useNesterov(sgd.nesterov()));
    }
    double b1;
    double b2;
    double eps;
    Ops ordered = scope;
    if (spec instanceof OptimizerSpec.AdamW w) {
      b1 = w.beta1();
      b2 = w.beta2();
      eps = w.epsilon();
      if (t.decay() && w.weightDecay() > 0) {
        Operand<TFloat32> w0 = (Operand<TFloat32>) graph.output(t.read());
        ordered = scope.withControlDependencies(List.of(scope.assignSub(var,
            scope.math.mul(w0, scope.math.mul(lr, scope.constant((float) w.weightDecay()))))));
      }
    } else {
      OptimizerSpec.Adam a = (OptimizerSpec.Adam) spec;
      b1 = a.beta1();
      b2 = a.beta2();
      eps = a.epsilon();
    }
    Operand<TFloat32> beta1 = ordered.constant((float) b1);
    Operand<TFloat32> beta2 = ordered.constant((float) b2);
    return ordered.train.applyAdam(var, (Operand<TFloat32>) s.get(0), (Operand<TFloat32>) s.get(1),
        ordered.math.pow(beta1, localStep), ordered.math.pow(beta2, localStep), lr, beta1, beta2,
        ordered.constant((float) eps), grad);
  }

  private boolean isReference(Target t) {
    return graph.operation(TensorNames.nodeOf(t.handle())).type().equals("VariableV2");
  }

  /**
   * Keras 3's Adam step, op for op (not TensorFlow's fused ResourceApplyAdam, whose float32
   * arithmetic differs: it forms {@code 1 - beta_2} from the float32 {@code beta_2}, Keras from the
   * Python float, a 1.3e-5 relative difference in {@code v}):
   * <pre>
   *   alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
   *   m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
   *   w -= m * alpha / (sqrt(v) + epsilon)
   * </pre>
   * where {@code g^2} is {@code square} when given (Keras's term for a table read by row gathers).
   */
  @SuppressWarnings("unchecked")
  private Op adam(Ops scope, Operand<? extends TType> handle, List<Operand<? extends TType>> s, Operand<TFloat32> lr,
      Operand<TFloat32> grad, Operand<TFloat32> square, Operand<TFloat32> localStep, double beta1, double beta2,
      double epsilon) {
    Operand<TFloat32> one = scope.constant(1f);
    Operand<TFloat32> beta1Power = scope.math.pow(scope.constant((float) beta1), localStep);
    Operand<TFloat32> beta2Power = scope.math.pow(scope.constant((float) beta2), localStep);
    Operand<TFloat32> alpha = scope.math.div(scope.math.mul(lr, scope.math.sqrt(scope.math.sub(one, beta2Power))),
        scope.math.sub(one, beta1Power));
    Operand<? extends TType> m = s.get(0);
    Operand<? extends TType> v = s.get(1);
    Operand<TFloat32> mOld = scope.readVariableOp(m, TFloat32.class);
    Operand<TFloat32> vOld = scope.readVariableOp(v, TFloat32.class);
    Op mUpdate = scope.assignAddVariableOp(m, scope.math.mul(scope.math.sub(grad, mOld),
        scope.constant((float) (1 - beta1))));
    Op vUpdate = scope.assignAddVariableOp(v, scope.math.mul(scope.math.sub(
        square != null ? square : scope.math.square(grad), vOld),
        scope.constant((float) (1 - beta2))));
    Ops after = scope.withControlDependencies(List.of(mUpdate, vUpdate));
    Operand<TFloat32> mNew = after.readVariableOp(m, TFloat32.class);
    Operand<TFloat32> vNew = after.readVariableOp(v, TFloat32.class);
    return after.assignSubVariableOp(handle, after.math.div(after.math.mul(mNew, alpha),
        after.math.add(after.math.sqrt(vNew), after.constant((float) epsilon))));
  }

  /**
   * Creates the slots of the targets that have none yet and zeroes them in one run: every
   * distinct run of a session builds an executor, so one per variable would cost minutes on
   * InceptionV3.
   */
  private void ensureSlots(List<Target> targets) {
    int count = spec instanceof OptimizerSpec.Sgd sgd ? (sgd.momentum() == 0 ? 0 : 1) : 2;
    Session.Runner init = session.runner();
    boolean any = false;
    for (Target t : targets) {
      if (slots.containsKey(t.name())) {
        continue;
      }
      List<Operand<? extends TType>> list = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        if (isReference(t)) {
          org.tensorflow.op.core.Variable<TFloat32> slot = tf.withName("ref_slot_" + (created++))
              .variable(t.shape(), TFloat32.class);
          init.addTarget(tf.assign(slot, zeros(t.shape())));
          list.add(slot);
        } else {
          VarHandleOp slot = newVariable(TFloat32.class, t.shape(), "slot_" + i);
          init.addTarget(tf.assignVariableOp(slot, zeros(t.shape())));
          list.add(slot);
        }
        any = true;
      }
      slots.put(t.name(), list);
    }
    if (any) {
      init.run();
    }
  }

  /**
   * Zeros of a shape, as Fill. (TF Java's {@code Ops.zeros} takes ~50 ms per call in a graph of
   * 17,000 nodes, minutes for a model's worth of slots; Fill takes microseconds.)
   */
  private Operand<TFloat32> zeros(Shape shape) {
    return tf.fill(tf.constant(shape), tf.constant(0f));
  }

  /** A fresh resource variable whose shared name no other variable in the process uses. */
  private <T extends TType> VarHandleOp newVariable(Class<T> type, Shape shape, String what) {
    String shared = "finetune_" + Integer.toHexString(System.identityHashCode(this)) + "_" + what + "_" + (created++);
    return tf.withName(what + "_" + created).varHandleOp(type, shape, VarHandleOp.sharedName(shared));
  }

}
