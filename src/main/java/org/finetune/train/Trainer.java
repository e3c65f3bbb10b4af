package org.finetune.train;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.finetune.data.NpyArray;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.TensorNames;
import org.finetune.savedmodel.VariableInfo;
import org.tensorflow.Graph;
import org.tensorflow.Result;
import org.tensorflow.Session;
import org.tensorflow.Tensor;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.Placeholder;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TInt64;

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
  private final Optional<Adapters> adapters;
  /** The model as stages select from it: layers cut away by a head left out, the head's layers added. */
  private final ModelInfo selectable;
  /** Flat-graph tensors (local names) the loss reaches the model through. */
  private final List<String> sources;
  /** The tensor predictions come from (the head's output or the trained signature output). */
  private final String outputTensor;
  private final StageCompiler compiler;
  private final BatchFeeder feeder;
  private final StateFiles stateFiles;
  private final List<Compiled> compiled = new ArrayList<>();
  private final List<String> warnings = new ArrayList<>();
  private int stage;
  private double rateScale = 1.0;
  private boolean closed;

  /** A variable the trainer can update: the handle node and the read tensor of the model's graph. */
  record Tracked(VariableInfo info, String handle, String read) {}

  /** A stage as built in the graph. */
  record Compiled(TrainableSet set, List<String> trained, String loss, String trainOp,
      List<String> gradients, boolean headOnly) {}

  public Trainer(KerasSavedModel model, TrainingPlan plan) {
    this.model = model;
    this.plan = plan;
    this.graph = model.graph();
    this.session = model.session();
    this.tf = Ops.create(graph).withSubScope(SCOPE + "_" + Integer.toHexString(System.identityHashCode(this)));
    FlatSignature plain = model.flatSignature(plan.signature());
    this.adapters = plan.lowRank().map(spec -> Adapters.place(model, plain, spec, tf));
    this.flat = adapters.map(Adapters::flat).orElse(plain);
    LossPlacement placed = LossPlacement.of(model, plan, flat, tf);
    this.head = placed.head();
    this.sources = placed.sources();
    adapters.ifPresent(a -> a.requireOnTheLossPath(sources));
    this.outputTensor = placed.outputTensor();
    this.lossGraph = placed.lossGraph();
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
    adapters.ifPresent(a -> a.tracked().forEach(t -> variables.put(t.info().name(), t)));
    this.selectable = StageCompiler.selectable(adapters.map(a -> a.adapt(model.info())).orElse(model.info()), flat,
        variables, sources, plan.head().isPresent(), head);
    for (int i = 0; i < plan.stages().size(); i++) {
      compiled.add(null);
    }
    this.compiler = new StageCompiler(new StageCompiler.Parts(plan, flat, graph, session, tf, lossGraph, optimizer,
        learningRate, variables, selectable, sources, flat.inputNodes(), headVariables(),
        adapters.map(Adapters::kernels).orElse(Map.of()), head.isPresent(), warnings));
    compiler.checkSelectors();
    this.stateFiles = new StateFiles(graph, session, tf);
    this.feeder = new BatchFeeder(plan, flat, lossGraph, flat.imported(sources.get(0)), head,
        () -> head.isPresent() && headOnly(stage), this::iterations);
  }

  /** The model as stages select from it: the layers that feed the loss, with a new head's layers last. */
  public ModelInfo selectableModel() {
    return selectable;
  }

  /** The new head's output tensor and its variables' names, when the plan puts one on. */
  public List<String> headVariables() {
    return head.map(h -> h.variables().stream().map(v -> v.info().name()).toList()).orElse(List.of());
  }

  /** The new head, when the plan puts one on. */
  public Optional<HeadPlacement> headPlacement() {
    return head.map(h -> {
      Map<String, String> reads = new LinkedHashMap<>();
      h.variables().forEach(v -> reads.put(v.info().name(), v.read()));
      return new HeadPlacement(h.spec(), sources.get(0), reads);
    });
  }

  /** The plan's low-rank adapters in one line (rank, scale, which kernels, how chosen); empty without them. */
  public Optional<String> adapters() {
    return adapters.map(Adapters::describe);
  }

  /** The adapters' variable names (A then B per kernel); empty without them. */
  public List<String> adapterVariables() {
    return adapters.map(a -> a.tracked().stream().map(t -> t.info().name()).toList()).orElse(List.of());
  }

  /** The adapters' values now, apart from the base (see {@link AdapterSet}). */
  public AdapterSet adapterSet() {
    checkOpen();
    return adapters.orElseThrow(() -> new IllegalStateException("the plan has no low-rank adapters"))
        .values(plan.signature());
  }

  /**
   * Runs {@code action} (an export) with the adapters folded into their kernels
   * ({@code W + scale A B}), then puts the kernels back bit for bit; without adapters, just runs it.
   */
  public <T> T withAdaptersMerged(java.util.function.Supplier<T> action) {
    checkOpen();
    return adapters.isPresent() ? adapters.get().merged(action) : action.get();
  }

  /**
   * Sets float32 variables (the model's the signature reads, a new head's, adapters') to the given
   * values, as Keras's {@code variable.assign}: e.g. to start from weights computed elsewhere.
   *
   * @throws IllegalArgumentException naming a variable this trainer does not have, or a shape or
   *     dtype that does not fit
   */
  public void assign(Map<String, NpyArray> values) {
    checkOpen();
    Adapters.Assign.run(graph, session, tf.withSubScope("assign"), variables, values);
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
    return fetch(inputs, outputTensor);
  }

  /** One tensor of the graph for {@code inputs}, in inference mode. */
  private NpyArray fetch(Map<String, NpyArray> inputs, String tensor) {
    checkOpen();
    List<Tensor> owned = new ArrayList<>();
    try {
      Session.Runner runner = session.runner();
      feed(runner, Batch.unlabelled(inputs), owned, false, false);
      runner.fetch(tensor);
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
    stateFiles.save(stateVariables(), prefix);
  }

  /**
   * Reads {@link #stateVariables()} back from the checkpoint at {@code prefix}; build the stages
   * first ({@link #useStage}) so that their optimizer slots exist.
   *
   * @throws IllegalArgumentException when the checkpoint lacks a variable this trainer has
   */
  public void restoreState(java.nio.file.Path prefix) {
    checkOpen();
    stateFiles.restore(stateVariables(), prefix);
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
    if (head.isEmpty()) {
      throw new IllegalStateException("features are the input of a new head; the plan has none");
    }
    return fetch(inputs, flat.imported(sources.get(0)));
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
        if (train && e.getMessage() != null && e.getMessage().contains(StageCompiler.NON_FINITE)) {
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
    feeder.feed(runner, batch, owned, train, true);
  }

  private void feed(Session.Runner runner, Batch batch, List<Tensor> owned, boolean train, boolean withTargets) {
    feeder.feed(runner, batch, owned, train, withTargets);
  }

  private Compiled compiledStage(int index) {
    Compiled c = compiled.get(index);
    if (c == null) {
      c = compiler.build(index);
      compiled.set(index, c);
    }
    return c;
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("this Trainer is closed");
    }
  }

  /**
   * Ends this trainer's use of the model. What it added to the model's graph (its variables,
   * optimizer slots and ops) stays there while the model is open: a TensorFlow graph only grows.
   * A long-lived model that is fine-tuned again and again keeps flat by training copies
   * ({@code FineTuneJob.builder(model.loader())} opens, trains and closes its own).
   */
  @Override
  public void close() {
    closed = true;
  }
}
