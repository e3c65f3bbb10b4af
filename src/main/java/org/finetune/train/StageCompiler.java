package org.finetune.train;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.finetune.graph.GradientPaths;
import org.finetune.graph.GradientRegistry;
import org.finetune.graph.LayerScopes;
import org.finetune.graph.OpDefs;
import org.finetune.model.FlatSignature;
import org.finetune.savedmodel.Ancestors;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.TensorNames;
import org.finetune.savedmodel.VariableInfo;
import org.tensorflow.Graph;
import org.tensorflow.Operand;
import org.tensorflow.Output;
import org.tensorflow.Result;
import org.tensorflow.Session;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.op.Op;
import org.tensorflow.op.Ops;
import org.tensorflow.types.TFloat32;

/**
 * Builds a {@link Trainer}'s stages into the model's graph, once each: the stage's trainable set
 * resolved against the model, the loss (with L2-SP towards the pretrained weights), gradients by
 * {@code Graph.addGradients}, optional global-norm clipping, a finiteness check every update waits
 * for, and the optimizer's updates with each group's rate factor.
 */
final class StageCompiler {
  private final TrainingPlan plan;
  private final FlatSignature flat;
  private final Graph graph;
  private final Session session;
  private final Ops tf;
  private final Losses.LossGraph lossGraph;
  private final Optimizer optimizer;
  private final String learningRate;
  private final Map<String, Trainer.Tracked> variables;
  private final ModelInfo selectable;
  private final List<String> sources;
  private final Set<String> inputNodes;
  private final Set<String> headNames;
  /** Adapter name to the kernel it adapts: an adapter is reachable where its kernel is, and has no pretrained value. */
  private final Map<String, String> adapterKernels;
  private final boolean hasHead;
  private final List<String> warnings;
  private final Map<String, String> pretrained = new HashMap<>();

  /** The trainer's graph parts it builds on; {@code warnings} receives what a build finds. */
  record Parts(TrainingPlan plan, FlatSignature flat, Graph graph, Session session, Ops tf,
      Losses.LossGraph lossGraph, Optimizer optimizer, String learningRate, Map<String, Trainer.Tracked> variables,
      ModelInfo selectable, List<String> sources, Set<String> inputNodes, List<String> headVariables,
      Map<String, String> adapterKernels, boolean hasHead, List<String> warnings) {}

  StageCompiler(Parts p) {
    this.plan = p.plan();
    this.flat = p.flat();
    this.graph = p.graph();
    this.session = p.session();
    this.tf = p.tf();
    this.lossGraph = p.lossGraph();
    this.optimizer = p.optimizer();
    this.learningRate = p.learningRate();
    this.variables = p.variables();
    this.selectable = p.selectable();
    this.sources = p.sources();
    this.inputNodes = p.inputNodes();
    this.headNames = new HashSet<>(p.headVariables());
    this.adapterKernels = p.adapterKernels();
    this.hasHead = p.hasHead();
    this.warnings = p.warnings();
  }

  /**
   * Resolves every stage's selectors, so that a name the model does not have is refused before
   * anything runs ({@link org.finetune.hint.BadSettingException}, {@link org.finetune.hint.Setting#LAYERS}).
   */
  void checkSelectors() {
    java.util.function.Function<String, java.util.Optional<Set<String>>> above = layersAbove();
    for (Stage s : plan.stages()) {
      TrainableSet.resolve(selectable, s.selectors(), above);
      s.groups().forEach(g -> TrainableSet.resolve(selectable, List.of(g.selector()), above));
    }
  }

  /** The layers used after a node of the flat graph, by the node's name: what "above NAME" selects. */
  private java.util.function.Function<String, java.util.Optional<Set<String>>> layersAbove() {
    Map<String, String> readLayers = new HashMap<>();
    for (Trainer.Tracked v : variables.values()) {
      if (v.read().startsWith(flat.prefix() + "/")) {
        readLayers.put(TensorNames.nodeOf(flat.local(v.read())), v.info().layer());
      }
    }
    return name -> LayerScopes.layersUsedAfter(flat.graphDef(), name, readLayers, inputNodes);
  }

  /** Builds stage {@code index}: its trainable set, gradients, checks and updates. */
  @SuppressWarnings("unchecked")
  Trainer.Compiled build(int index) {
    Stage s = plan.stages().get(index);
    java.util.function.Function<String, java.util.Optional<Set<String>>> above = layersAbove();
    TrainableSet set = TrainableSet.resolve(selectable, s.selectors(), above);
    Map<String, Double> factors = new HashMap<>();
    for (Stage.Group g : s.groups()) {
      TrainableSet part = TrainableSet.resolve(selectable, List.of(g.selector()), above);
      part.variables().forEach(v -> factors.putIfAbsent(v, g.rateFactor()));
    }
    List<String> localReads = new ArrayList<>();
    for (String name : set.variables()) {
      if (!headNames.contains(name)) {
        localReads.add(flat.local(variables.get(adapterKernels.getOrDefault(name, name)).read()));
      }
    }
    Set<String> reachable = GradientPaths.reachable(flat.graphDef(), sources, localReads, OpDefs.runtime(),
        GradientRegistry.builtIn());
    List<String> trained = new ArrayList<>();
    List<String> unreachable = new ArrayList<>();
    for (String name : set.variables()) {
      boolean ok = headNames.contains(name)
          || reachable.contains(flat.local(variables.get(adapterKernels.getOrDefault(name, name)).read()));
      (ok ? trained : unreachable).add(name);
    }
    if (!unreachable.isEmpty()) {
      warnings.add("stage " + index + ": left out " + unreachable.size() + " trainable variable(s) the loss cannot"
          + " reach through ops with gradients: " + String.join(", ", unreachable)
          + (flat.keptLoops().isEmpty() ? "" : " (" + String.join("; ", flat.keptLoops()) + ")"));
    }
    if (trained.isEmpty()) {
      throw new IllegalArgumentException("stage " + index + " selects no variable the loss can reach; "
          + String.join(", ", set.variables()) + " sit behind ops without gradients");
    }
    Ops scope = tf.withSubScope("stage_" + index);
    Operand<TFloat32> loss = lossGraph.loss();
    List<String> pretrainedTrained = trained.stream()
        .filter(n -> !headNames.contains(n) && !adapterKernels.containsKey(n)).toList();
    if (plan.l2sp() > 0 && !pretrainedTrained.isEmpty()) {
      loss = scope.math.add(loss, l2sp(scope, pretrainedTrained));
    }
    Map<String, GatheredRows> gathered = gatheredRows(trained);
    List<Output<?>> xs = new ArrayList<>();
    for (String name : trained) {
      xs.add(graph.output(variables.get(name).read()));
    }
    gathered.values().forEach(g -> g.gathers().forEach(t -> xs.add(graph.output(t))));
    Output<?>[] grads = graph.addGradients(scope.scope().makeOpName("gradients"), new Output<?>[] {loss.asOutput()},
        xs.toArray(Output<?>[]::new), null);
    List<Operand<TFloat32>> gradients = new ArrayList<>();
    List<String> gradientNames = new ArrayList<>();
    for (int i = 0; i < trained.size(); i++) {
      Output<?> g = grads[i];
      gradients.add((Operand<TFloat32>) g);
      gradientNames.add(g.op().name() + ":" + g.index());
    }
    if (plan.clipGlobalNorm().isPresent()) {
      gradients = clipByGlobalNorm(scope, gradients, plan.clipGlobalNorm().getAsDouble());
    }
    List<Optimizer.Target> targets = new ArrayList<>();
    for (String name : trained) {
      Trainer.Tracked v = variables.get(name);
      long[] dims = v.info().shape().stream().mapToLong(Long::longValue).toArray();
      targets.add(new Optimizer.Target(name, v.handle(), v.read(), Shape.of(dims),
          factors.getOrDefault(name, 1.0), !(excludedFromDecay(v.info()))));
    }
    // Every update reads the gradients and the learning rate through identities that wait for a
    // finiteness check of the loss and all gradients: when it fails the run stops before any
    // variable, slot or the step counter changes, so a bad batch leaves the model as it was.
    Op check = finiteCheck(scope, loss, gradients);
    Ops gated = scope.withControlDependencies(List.of(check));
    List<Operand<TFloat32>> checkedGradients = new ArrayList<>();
    for (Operand<TFloat32> g : gradients) {
      checkedGradients.add(gated.identity(g));
    }
    // Keras's second-moment term for tables read by row gathers, from the rows' own gradients.
    List<Operand<TFloat32>> squares = new ArrayList<>();
    int next = trained.size();
    for (String name : trained) {
      GatheredRows g = gathered.get(name);
      if (g == null) {
        squares.add(null);
        continue;
      }
      List<Operand<TFloat32>> rowGradients = new ArrayList<>();
      for (int k = 0; k < g.gathers().size(); k++) {
        rowGradients.add(gated.identity((Operand<TFloat32>) grads[next++]));
      }
      squares.add(g.squares(gated, graph, rowGradients, (Operand<TFloat32>) graph.output(variables.get(name).read())));
    }
    Op train = optimizer.applyOp(scope, targets, checkedGradients, squares,
        gated.identity((Operand<TFloat32>) graph.output(learningRate)));
    return new Trainer.Compiled(set, trained, loss.asOutput().op().name() + ":" + loss.asOutput().index(),
        train.op().name(), gradientNames, hasHead && headNames.containsAll(trained));
  }

  /**
   * The trained variables whose only uses are row gathers, for Adam's Keras-exact second moment
   * ({@link GatheredRows}). Keras's gradient is then rows only while nothing adds a dense term:
   * not with L2-SP (a dense pull on every weight) or global-norm clipping (which Keras takes over
   * the rows), so those plans keep the dense gradient.
   */
  private Map<String, GatheredRows> gatheredRows(List<String> trained) {
    Map<String, GatheredRows> out = new java.util.LinkedHashMap<>();
    boolean adam = plan.optimizer() instanceof OptimizerSpec.Adam || plan.optimizer() instanceof OptimizerSpec.AdamW;
    if (!adam || plan.l2sp() > 0 || plan.clipGlobalNorm().isPresent()) {
      return out;
    }
    Map<String, List<org.tensorflow.proto.NodeDef>> consumers = null;
    for (String name : trained) {
      Trainer.Tracked v = variables.get(name);
      if (headNames.contains(name) || adapterKernels.containsKey(name) || !v.read().startsWith(flat.prefix() + "/")) {
        continue;
      }
      if (consumers == null) {
        consumers = GatheredRows.consumers(flat);
      }
      GatheredRows.of(flat, consumers, flat.local(v.read())).ifPresent(g -> out.put(name, g));
    }
    return out;
  }

  /** The message of the check that stops a step on a non-finite loss or gradient. */
  static final String NON_FINITE = "finetune: non-finite loss or gradient";

  private static Op finiteCheck(Ops scope, Operand<TFloat32> loss, List<Operand<TFloat32>> gradients) {
    List<Operand<org.tensorflow.types.TBool>> parts = new ArrayList<>();
    parts.add(scope.reduceAll(scope.math.isFinite(loss), scope.constant(new int[0])));
    for (Operand<TFloat32> g : gradients) {
      parts.add(scope.reduceAll(scope.math.isFinite(g), allAxes(scope, g)));
    }
    Operand<org.tensorflow.types.TBool> all = scope.reduceAll(scope.stack(parts), scope.constant(new int[] {0}));
    return scope.withName("finite_check").assertThat(all, List.of(scope.constant(NON_FINITE)));
  }

  private static Operand<org.tensorflow.types.TInt32> allAxes(Ops scope, Operand<?> t) {
    return scope.range(scope.constant(0), scope.rank(t), scope.constant(1));
  }

  /** Keras's AdamW exclusion used by our default: rank-0/1 variables (biases, norm scales/offsets). */
  private boolean excludedFromDecay(VariableInfo v) {
    return plan.optimizer() instanceof OptimizerSpec.AdamW w && w.excludeBiasesAndNorms() && v.shape().size() <= 1;
  }

  @SuppressWarnings("unchecked")
  private Operand<TFloat32> l2sp(Ops scope, List<String> trained) {
    snapshot(trained.stream().filter(n -> !pretrained.containsKey(n)).toList());
    Operand<TFloat32> total = scope.constant(0f);
    for (String name : trained) {
      String read = variables.get(name).read();
      String snapshot = pretrained.get(name);
      Operand<TFloat32> diff = scope.math.sub((Operand<TFloat32>) graph.output(read),
          (Operand<TFloat32>) graph.output(snapshot));
      total = scope.math.add(total, scope.reduceSum(scope.math.square(diff), Losses.allAxes(scope, diff)));
    }
    return scope.math.mul(scope.constant((float) (plan.l2sp() / 2)), total);
  }

  /** Constant copies of variables' current values (one run): the pretrained weights L2-SP pulls towards. */
  private void snapshot(List<String> names) {
    if (names.isEmpty()) {
      return;
    }
    Session.Runner runner = session.runner();
    names.forEach(n -> runner.fetch(variables.get(n).read()));
    try (Result r = runner.run()) {
      for (int i = 0; i < names.size(); i++) {
        TFloat32 value = (TFloat32) r.get(i);
        pretrained.put(names.get(i), tf.withName("pretrained").constantOf(value).asOutput().op().name() + ":0");
      }
    }
  }

  /** Keras's {@code global_clipnorm}: {@code g * clip * min(1 / norm, 1 / clip)}, norm over all gradients. */
  private static List<Operand<TFloat32>> clipByGlobalNorm(Ops tf, List<Operand<TFloat32>> grads, double clip) {
    List<Operand<TFloat32>> squares = new ArrayList<>();
    for (Operand<TFloat32> g : grads) {
      squares.add(tf.reduceSum(tf.math.square(g), Losses.allAxes(tf, g)));
    }
    Operand<TFloat32> norm = tf.math.sqrt(tf.reduceSum(tf.stack(squares), tf.constant(0)));
    Operand<TFloat32> c = tf.constant((float) clip);
    Operand<TFloat32> one = tf.constant(1f);
    Operand<TFloat32> scale = tf.math.mul(c, tf.math.minimum(tf.math.div(one, norm), tf.math.div(one, c)));
    List<Operand<TFloat32>> out = new ArrayList<>();
    for (Operand<TFloat32> g : grads) {
      out.add(tf.math.mul(g, scale));
    }
    return out;
  }



  /** The model's layers that still feed the loss (all but those a head cut away), then the head's. */
  static ModelInfo selectable(ModelInfo info, FlatSignature flat, Map<String, Trainer.Tracked> variables,
      List<String> sources, boolean cut, java.util.Optional<Head> head) {
    Set<String> upstream = Ancestors.of(flat.graphDef().getNodeList(), sources, Ancestors.Edges.DATA);
    List<LayerInfo> layers = new ArrayList<>();
    for (LayerInfo layer : info.layers()) {
      boolean feeds = layer.variables().stream().anyMatch(v -> {
        Trainer.Tracked t = variables.get(v.name());
        return t != null && upstream.contains(TensorNames.nodeOf(flat.local(t.read())));
      });
      if (feeds || !cut) {
        layers.add(layer);
      }
    }
    List<VariableInfo> all = new ArrayList<>(info.variables());
    if (head.isPresent()) {
      Map<String, List<VariableInfo>> byLayer = new java.util.LinkedHashMap<>();
      for (Head.Variable v : head.get().variables()) {
        byLayer.computeIfAbsent(v.info().layer(), k -> new ArrayList<>()).add(v.info());
        all.add(v.info());
      }
      byLayer.forEach((name, vars) -> layers.add(new LayerInfo(name, vars)));
    }
    return new ModelInfo(info.dir(), info.exportPath(), info.tags(), info.signatures(), info.signature(), all, layers,
        info.opCounts(), info.gradientGaps(), info.nestedModels());
  }
}
