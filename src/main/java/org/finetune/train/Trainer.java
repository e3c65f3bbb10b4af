package org.finetune.train;

import org.finetune.savedmodel.TensorNames;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.finetune.data.NpyArray;
import org.finetune.graph.GradientPaths;
import org.finetune.graph.GradientRegistry;
import org.finetune.graph.LayerScopes;
import org.finetune.graph.OpDefs;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.VariableInfo;
import org.tensorflow.Graph;
import org.tensorflow.Operand;
import org.tensorflow.Output;
import org.tensorflow.Result;
import org.tensorflow.Session;
import org.tensorflow.Tensor;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.op.Op;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.Placeholder;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TInt64;
import org.tensorflow.types.TString;

/**
 * Trains a loaded Keras SavedModel in the TensorFlow runtime. The signature is flattened into the
 * model's graph once; the loss, and for each stage its gradients and updates, are built once (a
 * stage when first used), so graph size grows with the number of stages, never with the number of
 * steps. Weights stay in the runtime: a step moves the batch in and a few scalars out.
 *
 * <p>Trains in inference mode, as Keras advises for fine-tuning: BatchNormalization uses its
 * moving statistics (which never change) and dropout is off.
 *
 * <p>Does not own the model it was given; {@link #close()} only ends this trainer's use of it.
 * Not thread-safe.
 */
public final class Trainer implements AutoCloseable {
  private static final String SCOPE = "finetune_train";

  private final KerasSavedModel model;
  private final TrainingPlan plan;
  private final FlatSignature flat;
  private final Graph graph;
  private final Session session;
  private final Ops tf;
  private final Losses.LossGraph lossGraph;
  private final String learningRate;
  private final Optimizer optimizer;
  private final Map<String, Tracked> variables = new LinkedHashMap<>();
  private final Optional<Head> head;
  /** The model as stages select from it: layers cut away by a head left out, the head's layers added. */
  private final ModelInfo selectable;
  /** Flat-graph tensors (local names) the loss reaches the model through. */
  private final List<String> sources;
  /** The tensor predictions come from (the head's output or the trained signature output). */
  private final String outputTensor;
  private final Map<String, String> pretrained = new HashMap<>();
  private final List<Compiled> compiled = new ArrayList<>();
  private final List<String> warnings = new ArrayList<>();
  private int stage;
  private double rateScale = 1.0;
  private boolean closed;

  /** A variable the trainer can update: the handle node and the read tensor of the model's graph. */
  private record Tracked(VariableInfo info, String handle, String read) {}

  /** A stage as built in the graph. */
  private record Compiled(TrainableSet set, List<String> trained, String loss, String trainOp,
      List<String> gradients, boolean headOnly) {}

  public Trainer(KerasSavedModel model, TrainingPlan plan) {
    this.model = model;
    this.plan = plan;
    this.flat = model.flatSignature(plan.signature());
    this.graph = model.graph();
    this.session = model.session();
    this.tf = Ops.create(graph).withSubScope(SCOPE + "_" + Integer.toHexString(System.identityHashCode(this)));
    SignatureInfo sig = model.info().signatures().get(plan.signature());
    Output<?> lossOn;
    if (plan.head().isPresent() && plan.head().get().at().isPresent()) {
      HeadSpec spec = plan.head().get();
      String features = flat.imported(LayerScopes.outputOf(flat.graphDef(), spec.at().get(), inputNodes(),
          flat.outputs().values().stream().map(flat::local).toList(), OpDefs.runtime()));
      this.head = Optional.of(buildHead(spec, features));
      this.sources = List.of(flat.local(features));
      lossOn = head.get().output();
    } else {
      String output = plan.output().orElseGet(() -> {
        if (sig.outputs().size() != 1) {
          throw new IllegalArgumentException("signature " + sig.name() + " has outputs " + flat.outputs().keySet()
              + "; name the one to train with the plan's output");
        }
        return sig.outputs().get(0).key();
      });
      String tensor = flat.outputs().get(output);
      if (tensor == null) {
        throw new IllegalArgumentException("signature " + flat.signature() + " has no output '" + output
            + "'; it has " + flat.outputs().keySet());
      }
      this.head = plan.head().map(spec -> buildHead(spec, tensor));
      this.sources = List.of(flat.local(tensor));
      lossOn = head.isPresent() ? head.get().output() : graph.output(tensor);
    }
    this.outputTensor = lossOn.op().name() + ":" + lossOn.index();
    this.lossGraph = Losses.build(graph, tf, flat, lossOn, plan.loss());
    Placeholder<TFloat32> lr = tf.withName("learning_rate").placeholder(TFloat32.class,
        Placeholder.shape(Shape.scalar()));
    this.learningRate = lr.op().name() + ":0";
    this.optimizer = new Optimizer(plan.optimizer(), graph, session, "optimizer");
    for (VariableInfo v : model.info().variables()) {
      if (!v.handle().isEmpty() && flat.reads().containsKey(v.handle())) {
        variables.put(v.name(), new Tracked(v, flat.imported(v.handle()), flat.reads().get(v.handle())));
      }
    }
    head.ifPresent(h -> h.variables().forEach(v -> variables.put(v.info().name(), new Tracked(v.info(), v.handle(),
        v.read()))));
    this.selectable = selectable();
    for (int i = 0; i < plan.stages().size(); i++) {
      compiled.add(null);
    }
  }

  private Head buildHead(HeadSpec spec, String features) {
    for (LayerInfo layer : model.info().layers()) {
      if (layer.name().equals(HeadSpec.HIDDEN) || layer.name().equals(HeadSpec.OUTPUT)) {
        throw new IllegalArgumentException("the model already has a layer named " + layer.name()
            + ", the name a new head's layer takes");
      }
    }
    Optional<Output<?>> padding = Optional.ofNullable(flat.inputs().get("padding_mask")).map(graph::output);
    return Head.build(graph, session, tf.withSubScope("head"), spec, graph.output(features), padding);
  }

  /** The model's layers that still feed the loss (all but those a head cut away), then the head's. */
  private ModelInfo selectable() {
    ModelInfo info = model.info();
    Set<String> upstream = ancestors(flat.graphDef(), sources);
    List<LayerInfo> layers = new ArrayList<>();
    for (LayerInfo layer : info.layers()) {
      boolean feeds = layer.variables().stream().anyMatch(v -> {
        Tracked t = variables.get(v.name());
        return t != null && upstream.contains(TensorNames.nodeOf(flat.local(t.read())));
      });
      if (feeds || plan.head().isEmpty()) {
        layers.add(layer);
      }
    }
    List<VariableInfo> all = new ArrayList<>(info.variables());
    if (head.isPresent()) {
      Map<String, List<VariableInfo>> byLayer = new LinkedHashMap<>();
      for (Head.Variable v : head.get().variables()) {
        byLayer.computeIfAbsent(v.info().layer(), k -> new ArrayList<>()).add(v.info());
        all.add(v.info());
      }
      byLayer.forEach((name, vars) -> layers.add(new LayerInfo(name, vars)));
    }
    return new ModelInfo(info.dir(), info.exportPath(), info.tags(), info.signatures(), info.signature(), all, layers,
        info.opCounts(), info.gradientGaps());
  }

  /** Nodes that {@code tensors} depend on (data inputs, transitively), themselves included. */
  private static Set<String> ancestors(org.tensorflow.proto.GraphDef graphDef, List<String> tensors) {
    Map<String, org.tensorflow.proto.NodeDef> nodes = new HashMap<>();
    graphDef.getNodeList().forEach(n -> nodes.put(n.getName(), n));
    Set<String> seen = new java.util.HashSet<>();
    java.util.ArrayDeque<String> todo = new java.util.ArrayDeque<>();
    tensors.forEach(t -> todo.add(TensorNames.nodeOf(t)));
    while (!todo.isEmpty()) {
      String name = todo.poll();
      org.tensorflow.proto.NodeDef n = nodes.get(name);
      if (n == null || !seen.add(name)) {
        continue;
      }
      for (String input : n.getInputList()) {
        if (!input.startsWith("^")) {
          todo.add(TensorNames.nodeOf(input));
        }
      }
    }
    return seen;
  }

  private Set<String> inputNodes() {
    Set<String> out = new java.util.HashSet<>();
    flat.inputs().values().forEach(t -> out.add(TensorNames.nodeOf(flat.local(t))));
    return out;
  }

  /** The model as stages select from it: the layers that feed the loss, with a new head's layers last. */
  public ModelInfo selectableModel() {
    return selectable;
  }

  /** The new head's output tensor and its variables' names, when the plan puts one on. */
  public List<String> headVariables() {
    return head.map(h -> h.variables().stream().map(v -> v.info().name()).toList()).orElse(List.of());
  }

  /**
   * Where a new head sits, for exporters: its spec, the flat-graph tensor it reads (a name of
   * {@link FlatSignature#graphDef()}), and its variables' read tensors (model-graph names) by name.
   */
  public record HeadPlacement(HeadSpec spec, String features, Map<String, String> reads) {
    public HeadPlacement {
      reads = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(reads));
    }
  }

  /** The new head, when the plan puts one on. */
  public Optional<HeadPlacement> headPlacement() {
    return head.map(h -> {
      Map<String, String> reads = new LinkedHashMap<>();
      h.variables().forEach(v -> reads.put(v.info().name(), v.read()));
      return new HeadPlacement(h.spec(), sources.get(0), reads);
    });
  }

  /** The model this trainer trains (not owned by it). */
  public KerasSavedModel model() {
    return model;
  }

  /** The flattened signature it trains through. */
  public FlatSignature flatSignature() {
    return flat;
  }

  /**
   * The model's prediction for {@code inputs} as trained so far: the new head's output when the
   * plan has one, else the trained signature output (inference mode: no dropout).
   */
  public NpyArray predict(Map<String, NpyArray> inputs) {
    checkOpen();
    List<Tensor> owned = new ArrayList<>();
    try {
      Session.Runner runner = session.runner();
      feed(runner, Batch.unlabelled(inputs), owned, false, false);
      runner.fetch(outputTensor);
      try (Result r = runner.run()) {
        return NpyArray.of(r.get(0));
      }
    } finally {
      owned.forEach(Tensor::close);
    }
  }

  /**
   * Everything training changes, as variable nodes of the model's graph by checkpoint key:
   * {@code model/<name>} for the model's variables the signature reads and a new head's, then the
   * optimizer's step counter and slots (for the stages built so far).
   */
  public Map<String, String> stateVariables() {
    checkOpen();
    Map<String, String> out = new LinkedHashMap<>();
    variables.forEach((name, v) -> out.put("model/" + name, TensorNames.nodeOf(v.handle())));
    out.putAll(optimizer.stateVariables());
    return out;
  }

  /** The stages built so far (their optimizer slots exist), in index order. */
  public List<Integer> builtStages() {
    List<Integer> out = new ArrayList<>();
    for (int i = 0; i < compiled.size(); i++) {
      if (compiled.get(i) != null) {
        out.add(i);
      }
    }
    return out;
  }

  /**
   * Writes {@link #stateVariables()} as a TensorFlow checkpoint at {@code prefix}
   * ({@code prefix.index}, {@code prefix.data-*}), straight from the runtime.
   */
  public void saveState(java.nio.file.Path prefix) {
    checkOpen();
    StateOps ops = stateOps();
    try (TString p = TString.scalarOf(prefix.toString())) {
      session.runner().feed(ops.prefix(), p).addTarget(ops.save()).run();
    }
  }

  /**
   * Reads {@link #stateVariables()} back from the checkpoint at {@code prefix}; build the stages
   * first ({@link #useStage}) so that their optimizer slots exist.
   *
   * @throws IllegalArgumentException when the checkpoint lacks a variable this trainer has
   */
  public void restoreState(java.nio.file.Path prefix) {
    checkOpen();
    StateOps ops = stateOps();
    try (TString p = TString.scalarOf(prefix.toString())) {
      session.runner().feed(ops.prefix(), p).addTarget(ops.restore()).run();
    } catch (org.tensorflow.exceptions.TensorFlowException e) {
      throw new IllegalArgumentException("the checkpoint " + prefix + " does not hold this trainer's state: "
          + e.getMessage().lines().findFirst().orElse(""), e);
    }
  }

  /** Save and restore ops for the current state variables, rebuilt only when that set changes. */
  private record StateOps(List<String> keys, String prefix, String save, String restore) {}

  private StateOps stateOps;

  @SuppressWarnings("unchecked")
  private StateOps stateOps() {
    Map<String, String> state = stateVariables();
    List<String> keys = new ArrayList<>(state.keySet());
    if (stateOps != null && stateOps.keys().equals(keys)) {
      return stateOps;
    }
    Ops scope = tf.withSubScope("state_" + keys.size());
    Placeholder<TString> prefix = scope.withName("prefix").placeholder(TString.class, Placeholder.shape(Shape.scalar()));
    String[] slices = new String[keys.size()];
    java.util.Arrays.fill(slices, "");
    Operand<TString> names = scope.constant(java.nio.charset.StandardCharsets.UTF_8, keys.toArray(new String[0]));
    Operand<TString> shapes = scope.constant(java.nio.charset.StandardCharsets.UTF_8, slices);
    List<Operand<?>> values = new ArrayList<>();
    List<Class<? extends org.tensorflow.types.family.TType>> types = new ArrayList<>();
    for (String key : keys) {
      org.tensorflow.GraphOperation op = graph.operation(state.get(key));
      org.tensorflow.proto.DataType dtype = op.type().equals("VarHandleOp")
          ? op.attributes().getAttrType("dtype") : op.output(0).dataType();
      Class<? extends org.tensorflow.types.family.TType> type =
          org.tensorflow.internal.types.registry.TensorTypeRegistry.find(dtype).type();
      types.add(type);
      values.add(op.type().equals("VarHandleOp")
          ? scope.readVariableOp((Operand<? extends org.tensorflow.types.family.TType>) op.output(0), type)
          : scope.identity((Operand<org.tensorflow.types.family.TType>) op.output(0)));
    }
    Op save = scope.withName("save").train.save(prefix, names, shapes, values);
    org.tensorflow.op.train.Restore restored = scope.withName("restore").train.restore(prefix, names, shapes, types);
    List<Op> assigns = new ArrayList<>();
    for (int i = 0; i < keys.size(); i++) {
      org.tensorflow.GraphOperation op = graph.operation(state.get(keys.get(i)));
      Operand<?> value = restored.tensors().get(i);
      if (op.type().equals("VarHandleOp")) {
        assigns.add(scope.assignVariableOp((Operand<? extends org.tensorflow.types.family.TType>) op.output(0), value));
      } else {
        assigns.add(scope.assign((Operand<org.tensorflow.types.family.TType>) op.output(0),
            (Operand<org.tensorflow.types.family.TType>) value));
      }
    }
    Op restore = scope.withControlDependencies(assigns).withName("restore_all").noOp();
    stateOps = new StateOps(keys, prefix.op().name() + ":0", save.op().name(), restore.op().name());
    return stateOps;
  }

  /**
   * The input key under which a {@link Batch} may carry the new head's features instead of the
   * signature's inputs (see {@link #features}); the base model is then not run at all.
   */
  public static final String FEATURES = "finetune:features";

  /**
   * Whether stage {@code index} trains the new head alone, so that the base's features can be
   * computed once and fed ({@link #FEATURES}) instead of recomputed every step.
   */
  public boolean headOnly(int index) {
    return compiledStage(index).headOnly();
  }

  /** The base model's features (the head's input) for {@code inputs}, as the head sees them. */
  public NpyArray features(Map<String, NpyArray> inputs) {
    checkOpen();
    if (head.isEmpty()) {
      throw new IllegalStateException("features are the input of a new head; the plan has none");
    }
    List<Tensor> owned = new ArrayList<>();
    try {
      Session.Runner runner = session.runner();
      feed(runner, Batch.unlabelled(inputs), owned, false, false);
      runner.fetch(flat.imported(sources.get(0)));
      try (Result r = runner.run()) {
        return NpyArray.of(r.get(0));
      }
    } finally {
      owned.forEach(Tensor::close);
    }
  }

  /** The plan this trainer follows. */
  public TrainingPlan plan() {
    return plan;
  }

  public int stageCount() {
    return plan.stages().size();
  }

  /** The current stage (0-based). */
  public int stage() {
    return stage;
  }

  /** Switches to stage {@code index}, building its updates the first time. Optimizer state carries over. */
  public void useStage(int index) {
    checkOpen();
    if (index < 0 || index >= stageCount()) {
      throw new IllegalArgumentException("stage " + index + " does not exist; the plan has " + stageCount());
    }
    stage = index;
    compiledStage(index);
  }

  /** The variables stage {@code index} trains (resolving it builds it). */
  public TrainableSet trainableSet(int index) {
    return compiledStage(index).set();
  }

  /** Names of the variables stage {@code index} really updates (the reachable part of its set). */
  public List<String> trainedVariables(int index) {
    return compiledStage(index).trained();
  }

  /** Warnings raised while building stages (e.g. trainable variables the loss cannot reach). */
  public List<String> warnings() {
    return List.copyOf(warnings);
  }

  /** One optimizer step of the current stage on {@code batch}; the loss and metrics are those before the update. */
  public StepResult step(Batch batch) {
    checkOpen();
    Compiled c = compiledStage(stage);
    long step = iterations();
    double rate = plan.schedule().at(step) * rateScale;
    return run(batch, c, rate, true, step);
  }

  /** Loss and metrics of the current stage's objective on {@code batch}, changing nothing. */
  public StepResult evaluate(Batch batch) {
    checkOpen();
    return run(batch, compiledStage(stage), plan.schedule().at(iterations()) * rateScale, false, iterations());
  }

  /**
   * The gradients of the current stage's objective on {@code batch} (before clipping), by variable
   * name, changing nothing; for checks and debugging, since it copies them out of the runtime.
   */
  public Map<String, NpyArray> gradients(Batch batch) {
    checkOpen();
    Compiled c = compiledStage(stage);
    List<Tensor> owned = new ArrayList<>();
    try {
      Session.Runner runner = session.runner();
      feed(runner, batch, owned, false);
      c.gradients().forEach(runner::fetch);
      Map<String, NpyArray> out = new LinkedHashMap<>();
      try (Result r = runner.run()) {
        for (int i = 0; i < c.trained().size(); i++) {
          out.put(c.trained().get(i), NpyArray.of(r.get(i)));
        }
      }
      return out;
    } finally {
      owned.forEach(Tensor::close);
    }
  }

  /**
   * Scales the schedule's learning rate from the next step on (reduce-on-plateau lowers it);
   * 1 by default.
   */
  public void setRateScale(double scale) {
    if (!(scale > 0) || Double.isInfinite(scale)) {
      throw new IllegalArgumentException("the learning-rate scale must be positive, got " + scale);
    }
    this.rateScale = scale;
  }

  public double rateScale() {
    return rateScale;
  }

  /** The optimizer's step count (Keras's {@code optimizer.iterations}). */
  public long iterations() {
    checkOpen();
    try (Result r = session.runner().fetch(optimizer.iterationsRead()).run()) {
      return ((TInt64) r.get(0)).getObject();
    }
  }

  /** Current values of the named variables, copied out of the runtime. */
  public Map<String, NpyArray> values(Collection<String> names) {
    checkOpen();
    if (names.isEmpty()) {
      return Map.of();
    }
    List<String> fetches = new ArrayList<>();
    for (String name : names) {
      Tracked v = variables.get(name);
      if (v == null) {
        throw new IllegalArgumentException("no variable '" + name + "' read by signature " + plan.signature()
            + (head.isPresent() ? " or the new head" : ""));
      }
      fetches.add(v.read());
    }
    Map<String, NpyArray> out = new LinkedHashMap<>();
    Session.Runner runner = session.runner();
    fetches.forEach(runner::fetch);
    try (Result r = runner.run()) {
      int i = 0;
      for (String name : names) {
        out.put(name, NpyArray.of(r.get(i++)));
      }
    }
    return out;
  }

  /** Nodes in the model's graph now (to check that it stays bounded). */
  public long graphNodeCount() {
    long n = 0;
    for (java.util.Iterator<?> it = graph.operations(); it.hasNext(); it.next()) {
      n++;
    }
    return n;
  }

  private java.util.function.Consumer<org.tensorflow.proto.RunMetadata> traceSink;

  /**
   * For profiling: every following step and evaluation runs with a full trace, whose run metadata
   * (per-op timings in its step stats) goes to {@code sink}; {@code null} stops tracing. Traced
   * steps are slower.
   */
  public void trace(java.util.function.Consumer<org.tensorflow.proto.RunMetadata> sink) {
    this.traceSink = sink;
  }

  private StepResult run(Batch batch, Compiled c, double rate, boolean train, long step) {
    List<Tensor> owned = new ArrayList<>();
    try {
      Session.Runner runner = session.runner();
      feed(runner, batch, owned, train);
      Tensor lr = TFloat32.scalarOf((float) rate);
      owned.add(lr);
      runner.feed(learningRate, lr);
      runner.fetch(c.loss());
      List<String> names = new ArrayList<>(lossGraph.metrics().keySet());
      for (String m : names) {
        runner.fetch(lossGraph.metrics().get(m));
      }
      if (train) {
        runner.addTarget(c.trainOp());
      }
      Result result;
      try {
        if (traceSink != null) {
          runner.setOptions(org.tensorflow.proto.RunOptions.newBuilder()
              .setTraceLevel(org.tensorflow.proto.RunOptions.TraceLevel.FULL_TRACE).build());
          result = runner.runAndFetchMetadata();
          traceSink.accept(result.getMetadata().orElseThrow());
        } else {
          result = runner.run();
        }
      } catch (org.tensorflow.exceptions.TFInvalidArgumentException e) {
        if (train && e.getMessage() != null && e.getMessage().contains(NON_FINITE)) {
          throw new NonFiniteStepException(step, stage);
        }
        throw e;
      }
      try (Result r = result) {
        double loss = ((TFloat32) r.get(0)).getFloat();
        Map<String, Double> metrics = new LinkedHashMap<>();
        for (int i = 0; i < names.size(); i++) {
          metrics.put(names.get(i), (double) ((TFloat32) r.get(i + 1)).getFloat());
        }
        return new StepResult(step, stage, loss, metrics, rate);
      }
    } finally {
      owned.forEach(Tensor::close);
    }
  }

  /** Feeds the batch's inputs and targets (and, in training, the head's dropout rate). */
  private void feed(Session.Runner runner, Batch batch, List<Tensor> owned, boolean train) {
    feed(runner, batch, owned, train, true);
  }

  private void feed(Session.Runner runner, Batch batch, List<Tensor> owned, boolean train, boolean withTargets) {
    NpyArray cached = batch.inputs().get(FEATURES);
    if (cached != null) {
      if (head.isEmpty() || !headOnly(stage)) {
        throw new IllegalArgumentException("a batch of cached features needs a stage that trains the new head alone");
      }
      Tensor t = cached.toTensor();
      owned.add(t);
      runner.feed(flat.imported(sources.get(0)), t);
    }
    for (Map.Entry<String, String> in : flat.inputs().entrySet()) {
      if (cached != null && !batch.inputs().containsKey(in.getKey())) {
        continue;
      }
      NpyArray a = batch.inputs().get(in.getKey());
      if (a == null) {
        throw new IllegalArgumentException("the batch lacks input '" + in.getKey() + "'; signature "
            + plan.signature() + " takes " + flat.inputs().keySet());
      }
      Tensor t = a.toTensor();
      owned.add(t);
      runner.feed(in.getValue(), t);
    }
    if (withTargets && lossGraph.targets().isPresent()) {
      NpyArray targets = batch.targets().orElseThrow(() -> new IllegalArgumentException(
          "the " + plan.loss().kerasName() + " loss needs targets; the batch has none"));
      Tensor t = targetTensor(targets);
      owned.add(t);
      runner.feed(lossGraph.targets().get(), t);
    }
    if (train && head.isPresent() && head.get().dropoutRate().isPresent()) {
      Tensor dropout = TFloat32.scalarOf((float) head.get().spec().dropout());
      owned.add(dropout);
      runner.feed(head.get().dropoutRate().get(), dropout);
      Tensor seed = org.tensorflow.types.TInt64.vectorOf(head.get().spec().seed(), iterations());
      owned.add(seed);
      runner.feed(head.get().dropoutSeed(), seed);
    }
  }

  private Tensor targetTensor(NpyArray targets) {
    // Integer labels for the sparse loss, floats for the others, whatever the file's dtype.
    String want = plan.loss() == LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY ? "int32" : "float32";
    if (targets.dtype().equals(want)) {
      return targets.toTensor();
    }
    double[] v = targets.toDoubles();
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(v.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    for (double d : v) {
      if (want.equals("int32")) {
        b.putInt((int) d);
      } else {
        b.putFloat((float) d);
      }
    }
    return new NpyArray(want, targets.shape(), b.array()).toTensor();
  }

  private Compiled compiledStage(int index) {
    Compiled c = compiled.get(index);
    if (c == null) {
      c = build(index);
      compiled.set(index, c);
    }
    return c;
  }

  @SuppressWarnings("unchecked")
  private Compiled build(int index) {
    Stage s = plan.stages().get(index);
    Map<String, String> readLayers = new HashMap<>();
    for (Tracked v : variables.values()) {
      if (v.read().startsWith(flat.prefix() + "/")) {
        readLayers.put(TensorNames.nodeOf(flat.local(v.read())), v.info().layer());
      }
    }
    Set<String> inputNodes = inputNodes();
    java.util.function.Function<String, java.util.Optional<Set<String>>> above =
        name -> LayerScopes.layersUsedAfter(flat.graphDef(), name, readLayers, inputNodes);
    TrainableSet set = TrainableSet.resolve(selectable, s.selectors(), above);
    Map<String, Double> factors = new HashMap<>();
    for (Stage.Group g : s.groups()) {
      TrainableSet part = TrainableSet.resolve(selectable, List.of(g.selector()), above);
      part.variables().forEach(v -> factors.putIfAbsent(v, g.rateFactor()));
    }
    Set<String> headNames = new java.util.HashSet<>(headVariables());
    List<String> localReads = new ArrayList<>();
    for (String name : set.variables()) {
      if (!headNames.contains(name)) {
        localReads.add(flat.local(variables.get(name).read()));
      }
    }
    Set<String> reachable = GradientPaths.reachable(flat.graphDef(), sources, localReads, OpDefs.runtime(),
        GradientRegistry.builtIn());
    List<String> trained = new ArrayList<>();
    List<String> unreachable = new ArrayList<>();
    for (String name : set.variables()) {
      boolean ok = headNames.contains(name) || reachable.contains(flat.local(variables.get(name).read()));
      (ok ? trained : unreachable).add(name);
    }
    if (!unreachable.isEmpty()) {
      warnings.add("stage " + index + ": left out " + unreachable.size() + " trainable variable(s) the loss cannot"
          + " reach through ops with gradients: " + String.join(", ", unreachable));
    }
    if (trained.isEmpty()) {
      throw new IllegalArgumentException("stage " + index + " selects no variable the loss can reach; "
          + String.join(", ", set.variables()) + " sit behind ops without gradients");
    }
    Ops scope = tf.withSubScope("stage_" + index);
    Operand<TFloat32> loss = lossGraph.loss();
    List<String> pretrainedTrained = trained.stream().filter(n -> !headNames.contains(n)).toList();
    if (plan.l2sp() > 0 && !pretrainedTrained.isEmpty()) {
      loss = scope.math.add(loss, l2sp(scope, pretrainedTrained));
    }
    Output<?>[] reads = new Output<?>[trained.size()];
    for (int i = 0; i < trained.size(); i++) {
      reads[i] = graph.output(variables.get(trained.get(i)).read());
    }
    Output<?>[] grads = graph.addGradients(scope.scope().makeOpName("gradients"), new Output<?>[] {loss.asOutput()},
        reads, null);
    List<Operand<TFloat32>> gradients = new ArrayList<>();
    List<String> gradientNames = new ArrayList<>();
    for (Output<?> g : grads) {
      gradients.add((Operand<TFloat32>) g);
      gradientNames.add(g.op().name() + ":" + g.index());
    }
    if (plan.clipGlobalNorm().isPresent()) {
      gradients = clipByGlobalNorm(scope, gradients, plan.clipGlobalNorm().getAsDouble());
    }
    List<Optimizer.Target> targets = new ArrayList<>();
    for (String name : trained) {
      Tracked v = variables.get(name);
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
    Op train = optimizer.applyOp(scope, targets, checkedGradients,
        gated.identity((Operand<TFloat32>) graph.output(learningRate)));
    return new Compiled(set, trained, loss.asOutput().op().name() + ":" + loss.asOutput().index(),
        train.op().name(), gradientNames, head.isPresent() && headNames.containsAll(trained));
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


  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("this Trainer is closed");
    }
  }

  @Override
  public void close() {
    closed = true;
  }
}
