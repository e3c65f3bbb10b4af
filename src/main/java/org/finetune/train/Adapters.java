package org.finetune.train;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.finetune.data.NpyArray;
import org.finetune.graph.LowRankAdapters;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.VariableInfo;
import org.tensorflow.Operand;
import org.tensorflow.Result;
import org.tensorflow.Session;
import org.tensorflow.Tensor;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.Placeholder;
import org.tensorflow.types.TFloat32;

/**
 * A plan's low-rank adapters in the trainer: the flat graph that reads every target kernel
 * through its adapters, the adapters as variables the stages can train (each in its kernel's
 * layer, the kernel itself no longer trainable), their start (A He-uniform as Keras's
 * {@code enable_lora}, B zero) and the merge an export needs.
 */
final class Adapters {
  /** One kernel with its adapters. */
  record Pair(VariableInfo kernel, Trainer.Tracked kernelTracked, Trainer.Tracked a, Trainer.Tracked b,
      String adapted) {}

  private final LowRankSpec spec;
  private final FlatSignature flat;
  private final List<Pair> pairs;
  private final String how;
  private final org.tensorflow.Graph graph;
  private final Session session;
  private final Ops tf;

  private Adapters(LowRankSpec spec, FlatSignature flat, List<Pair> pairs, String how, KerasSavedModel model,
      Ops tf) {
    this.spec = spec;
    this.graph = model.graph();
    this.session = model.session();
    this.flat = flat;
    this.pairs = pairs;
    this.how = how;
    this.tf = tf;
  }

  /** Chooses the kernels, imports the flat graph with their adapters and sets the adapters' start. */
  static Adapters place(KerasSavedModel model, FlatSignature plain, LowRankSpec spec, Ops tf) {
    return place(model, plain, spec, tf, "");
  }

  /**
   * As above; {@code namespace} (empty for training) keeps these adapters' resources apart from
   * every other set of the same shape on the model, as serving several sets at once needs.
   */
  static Adapters place(KerasSavedModel model, FlatSignature plain, LowRankSpec spec, Ops tf, String namespace) {
    List<VariableInfo> read = model.info().variables().stream()
        .filter(v -> !v.handle().isEmpty() && plain.reads().containsKey(v.handle())).toList();
    LowRankSpec.Choice choice = spec.choose(read);
    for (VariableInfo k : choice.kernels()) {
      org.tensorflow.GraphOperation op = model.graph().operation(k.handle());
      if (op == null || !op.type().equals("VarHandleOp")) {
        throw new org.finetune.hint.BadSettingException(k.name() + " is a TF1 reference variable ("
            + (op == null ? "no handle" : op.type()) + "); adapters are merged into resource variables only",
            org.finetune.hint.Setting.ADAPTERS, "leave it out of the targets");
      }
    }
    // One import per rank, scale and set of kernels; its adapters' resources are named after it.
    String variant = "lora" + namespace + "_r" + spec.rank() + "_" + Integer.toHexString(
        (spec.alpha() + " " + choice.kernels().stream().map(VariableInfo::name).toList()).hashCode());
    List<LowRankAdapters.Target> targets = new ArrayList<>();
    for (VariableInfo v : choice.kernels()) {
      long[] shape = v.shape().stream().mapToLong(Long::longValue).toArray();
      targets.add(new LowRankAdapters.Target(plain.local(plain.reads().get(v.handle())), shape, spec.rank(),
          spec.scale(), "finetune_" + variant + "/" + v.name()));
    }
    // The rewrite names the adapters' nodes; an import made earlier for this variant used the same names.
    LowRankAdapters.Result rewritten = LowRankAdapters.rewrite(plain.graphDef(), targets);
    Map<String, LowRankAdapters.Placed> placed = rewritten.adapters();
    FlatSignature flat = model.flatSignature(plain.signature(), variant, g -> rewritten.graphDef()).flat();
    List<Pair> pairs = new ArrayList<>();
    for (int i = 0; i < choice.kernels().size(); i++) {
      VariableInfo k = choice.kernels().get(i);
      LowRankAdapters.Placed p = placed.get(targets.get(i).read());
      Trainer.Tracked kernel = new Trainer.Tracked(k, flat.imported(k.handle()), flat.reads().get(k.handle()));
      pairs.add(new Pair(k, kernel, tracked(flat, k, "a", p.handleA(), p.readA(), p.shapeA()),
          tracked(flat, k, "b", p.handleB(), p.readB(), p.shapeB()), flat.imported(p.adapted())));
    }
    Adapters a = new Adapters(spec, flat, pairs, choice.how(), model, tf.withSubScope("lora"));
    a.start();
    return a;
  }

  private static Trainer.Tracked tracked(FlatSignature flat, VariableInfo kernel, String which, String handle,
      String read, long[] shape) {
    int slash = kernel.name().lastIndexOf('/');
    String name = kernel.name().substring(0, slash + 1) + "lora_" + kernel.name().substring(slash + 1) + "_" + which;
    List<Long> dims = new ArrayList<>();
    for (long d : shape) {
      dims.add(d);
    }
    VariableInfo info = new VariableInfo(name, kernel.layer(), dims, "float32", true, flat.imported(handle),
        VariableInfo.Kind.WEIGHT);
    return new Trainer.Tracked(info, flat.imported(handle), flat.imported(read));
  }

  /** Sets every A He-uniform (seeded by the spec, in kernel order) and every B to zero. */
  private void start() {
    SplittableRandom random = new SplittableRandom(spec.seed());
    Map<String, NpyArray> values = new LinkedHashMap<>();
    for (Pair p : pairs) {
      long[] shape = shape(p.a());
      long fanIn = shape[shape.length - 2];
      for (int i = 0; i < shape.length - 2; i++) {
        fanIn *= shape[i];
      }
      double limit = Math.sqrt(6.0 / fanIn);
      float[] a = new float[Math.toIntExact(count(shape))];
      for (int i = 0; i < a.length; i++) {
        a[i] = (float) (random.nextDouble() * 2 * limit - limit);
      }
      values.put(p.a().info().name(), NpyArray.ofFloats(shape, a));
      long[] shapeB = shape(p.b());
      values.put(p.b().info().name(), NpyArray.ofFloats(shapeB, new float[Math.toIntExact(count(shapeB))]));
    }
    Map<String, Trainer.Tracked> byName = new LinkedHashMap<>();
    tracked().forEach(t -> byName.put(t.info().name(), t));
    Assign.run(graph, session, tf, byName, values);
  }

  /**
   * Refuses kernels the loss does not reach from {@code sources} (a new head placed below them cuts
   * them away): their adapters could never learn.
   */
  void requireOnTheLossPath(List<String> sources) {
    java.util.Set<String> upstream = org.finetune.savedmodel.Ancestors.of(flat.graphDef().getNodeList(), sources,
        org.finetune.savedmodel.Ancestors.Edges.DATA);
    List<String> cut = pairs.stream().filter(p -> !upstream.contains(org.finetune.savedmodel.TensorNames.nodeOf(
        flat.local(p.kernelTracked().read())))).map(p -> p.kernel().name()).toList();
    if (!cut.isEmpty()) {
      throw new org.finetune.hint.BadSettingException("the loss does not reach " + cut.size() + " of the "
          + pairs.size() + " kernels chosen for adapters (" + String.join(", ", cut.stream().limit(4).toList())
          + (cut.size() > 4 ? ", ..." : "") + "): they lie above where the new head takes its features, or off"
          + " the trained output", org.finetune.hint.Setting.ADAPTERS, "name target kernels below the head's layer");
    }
  }

  /** The flat signature training goes through. */
  FlatSignature flat() {
    return flat;
  }

  /** The adapters as trainable variables, A then B for each kernel in the model's order. */
  List<Trainer.Tracked> tracked() {
    List<Trainer.Tracked> out = new ArrayList<>();
    pairs.forEach(p -> {
      out.add(p.a());
      out.add(p.b());
    });
    return out;
  }

  /** The adapters' values now, by kernel, in the model's order. */
  AdapterSet values(String signature) {
    Session.Runner runner = session.runner();
    tracked().forEach(t -> runner.fetch(t.read()));
    List<AdapterSet.Pair> out = new ArrayList<>();
    try (Result r = runner.run()) {
      for (int i = 0; i < pairs.size(); i++) {
        out.add(new AdapterSet.Pair(pairs.get(i).kernel().name(), NpyArray.of(r.get(2 * i)), NpyArray.of(r.get(2 * i + 1))));
      }
    }
    return new AdapterSet(spec.rank(), spec.alpha(), signature, java.util.Optional.empty(), out);
  }

  /** Sets the adapters to {@code set}'s values (same kernels, same shapes). */
  void assign(AdapterSet set) {
    Map<String, Trainer.Tracked> byName = new LinkedHashMap<>();
    Map<String, NpyArray> values = new LinkedHashMap<>();
    for (int i = 0; i < pairs.size(); i++) {
      Pair p = pairs.get(i);
      AdapterSet.Pair given = set.pairs().get(i);
      if (!given.kernel().equals(p.kernel().name())) {
        throw new IllegalArgumentException("adapter " + i + " is for " + given.kernel() + ", the model's for "
            + p.kernel().name());
      }
      byName.put(p.a().info().name(), p.a());
      byName.put(p.b().info().name(), p.b());
      values.put(p.a().info().name(), given.a());
      values.put(p.b().info().name(), given.b());
    }
    Assign.run(graph, session, tf, byName, values);
  }

  /** Adapter name to the kernel it adapts. */
  Map<String, String> kernels() {
    Map<String, String> out = new LinkedHashMap<>();
    pairs.forEach(p -> {
      out.put(p.a().info().name(), p.kernel().name());
      out.put(p.b().info().name(), p.kernel().name());
    });
    return out;
  }

  /** One line: rank, scale, how many kernels and which. */
  String describe() {
    return "low-rank adapters, rank " + spec.rank() + " (update scaled by alpha/rank = " + spec.scale() + "), on "
        + pairs.size() + (pairs.size() == 1 ? " kernel, " : " kernels, ") + how + ": " + String.join(", ", pairs.stream().limit(4)
            .map(p -> p.kernel().name()).toList()) + (pairs.size() > 4 ? ", ..." : "")
        + "; the kernels themselves stay frozen";
  }

  /**
   * The model as stages select from it: each target kernel no longer trainable, its adapters
   * beside it in its layer.
   */
  ModelInfo adapt(ModelInfo info) {
    Map<String, Pair> byKernel = new LinkedHashMap<>();
    pairs.forEach(p -> byKernel.put(p.kernel().name(), p));
    List<VariableInfo> all = new ArrayList<>();
    for (VariableInfo v : info.variables()) {
      all.addAll(adapted(v, byKernel));
    }
    List<LayerInfo> layers = new ArrayList<>();
    for (LayerInfo l : info.layers()) {
      List<VariableInfo> vars = new ArrayList<>();
      l.variables().forEach(v -> vars.addAll(adapted(v, byKernel)));
      layers.add(new LayerInfo(l.name(), vars));
    }
    return new ModelInfo(info.dir(), info.exportPath(), info.tags(), info.signatures(), info.signature(), all, layers,
        info.opCounts(), info.gradientGaps(), info.nestedModels());
  }

  private static List<VariableInfo> adapted(VariableInfo v, Map<String, Pair> byKernel) {
    Pair p = byKernel.get(v.name());
    if (p == null) {
      return List.of(v);
    }
    VariableInfo frozen = new VariableInfo(v.name(), v.layer(), v.shape(), v.dtype(), false, v.handle(), v.kind());
    return List.of(frozen, p.a().info(), p.b().info());
  }

  /**
   * Runs {@code action} with every target kernel holding {@code W + scale A B}, then puts the
   * kernels back as they were (bit for bit): what an export writes is the merged model.
   */
  <T> T merged(java.util.function.Supplier<T> action) {
    Session.Runner fetch = session.runner();
    pairs.forEach(p -> fetch.fetch(p.kernelTracked().read()));
    pairs.forEach(p -> fetch.fetch(p.adapted()));
    Map<String, NpyArray> before = new LinkedHashMap<>();
    Map<String, NpyArray> merged = new LinkedHashMap<>();
    Map<String, Trainer.Tracked> kernels = new LinkedHashMap<>();
    try (Result r = fetch.run()) {
      for (int i = 0; i < pairs.size(); i++) {
        String name = pairs.get(i).kernel().name();
        before.put(name, NpyArray.of(r.get(i)));
        merged.put(name, NpyArray.of(r.get(pairs.size() + i)));
        kernels.put(name, pairs.get(i).kernelTracked());
      }
    }
    Assign.run(graph, session, tf, kernels, merged);
    try {
      return action.get();
    } finally {
      Assign.run(graph, session, tf, kernels, before);
    }
  }

  private static long[] shape(Trainer.Tracked t) {
    return t.info().shape().stream().mapToLong(Long::longValue).toArray();
  }

  private static long count(long[] shape) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }

  /** Assigns values to tracked variables through placeholders (ops built per call: exports and starts are rare). */
  static final class Assign {
    private Assign() {}

    static void run(org.tensorflow.Graph graph, Session session, Ops tf, Map<String, Trainer.Tracked> variables, Map<String, NpyArray> values) {
      Session.Runner runner = session.runner();
      List<Tensor> owned = new ArrayList<>();
      try {
        for (Map.Entry<String, NpyArray> e : values.entrySet()) {
          Trainer.Tracked t = variables.get(e.getKey());
          if (t == null) {
            throw new IllegalArgumentException("no variable '" + e.getKey() + "' to assign; there are "
                + String.join(", ", variables.keySet()));
          }
          long[] shape = shape(t);
          if (!java.util.Arrays.equals(shape, e.getValue().shape())) {
            throw new IllegalArgumentException(e.getKey() + " has shape " + java.util.Arrays.toString(shape)
                + "; the value has " + java.util.Arrays.toString(e.getValue().shape()));
          }
          if (!t.info().dtype().equals("float32")) {
            throw new IllegalArgumentException(e.getKey() + " is " + t.info().dtype() + "; only float32 variables are"
                + " assigned");
          }
          Placeholder<TFloat32> p = tf.placeholder(TFloat32.class, Placeholder.shape(Shape.of(shape)));
          Operand<?> handle = graph.operation(org.finetune.savedmodel.TensorNames.nodeOf(t.handle())).output(0);
          runner.addTarget(tf.assignVariableOp(handle, p));
          Tensor value = e.getValue().castTo("float32").toTensor();
          owned.add(value);
          runner.feed(p, value);
        }
        runner.run().close();
      } finally {
        owned.forEach(Tensor::close);
      }
    }
  }
}
