package org.finetune.model;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import org.finetune.graph.FunctionFlattener;
import org.finetune.graph.OpDefs;
import org.finetune.hint.Setting;
import org.finetune.savedmodel.CheckpointKeys;
import org.finetune.savedmodel.DTypes;
import org.finetune.savedmodel.InvalidModelException;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.SavedModelDirectory;
import org.finetune.savedmodel.SavedModelInspector;
import org.finetune.savedmodel.SaverMap;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorNames;
import org.finetune.savedmodel.TensorSpec;
import org.finetune.savedmodel.UnsafeOps;
import org.tensorflow.Result;
import org.tensorflow.SavedModelBundle;
import org.tensorflow.Session;
import org.tensorflow.Tensor;
import org.tensorflow.exceptions.TensorFlowException;

/**
 * A Keras SavedModel opened in the TensorFlow runtime. Opening reads the directory as data first
 * ({@link ModelInfo}: signatures, layers, variables, op audit) and only then loads it, so a
 * damaged or mistaken directory is refused before any of its ops run.
 *
 * <p>Owns its {@link SavedModelBundle}; {@link #close()} releases it, and any use after that
 * throws. Safe for concurrent {@link #predict} calls (the runtime session is thread-safe).
 */
public final class KerasSavedModel implements AutoCloseable {
  private final ModelInfo info;
  private final SavedModelDirectory files;
  private final SavedModelBundle bundle;
  private final Loader loader;
  private final Map<String, FlatSignature> flat = new java.util.HashMap<>();
  private volatile boolean closed;

  private KerasSavedModel(ModelInfo info, SavedModelDirectory files, SavedModelBundle bundle, Loader loader) {
    this.info = info;
    this.files = files;
    this.bundle = bundle;
    this.loader = loader;
  }

  /** How this model was opened: {@code loader().load()} opens another, independent copy of it. */
  public Loader loader() {
    return loader;
  }

  /** Opens the {@code serve} MetaGraph of {@code dir} with the defaults of {@link #loader}. */
  public static KerasSavedModel open(Path dir) {
    return loader(dir).load();
  }

  /**
   * How to open {@code dir}: its {@code serve} MetaGraph, the signature {@code serving_default}
   * (or the only one), unsafe ops refused, the runtime's defaults; change what differs, then
   * {@link Loader#load()}.
   */
  public static Loader loader(Path dir) {
    return new Loader(dir, SavedModelDirectory.SERVE, Optional.empty(), false, RuntimeOptions.defaults());
  }

  /**
   * The options a model is opened with, as TF Java's {@code SavedModelBundle.loader(dir)} takes
   * them; a value, so that the same model can be opened again ({@link KerasSavedModel#loader()}).
   *
   * @param dir the SavedModel directory
   * @param tags the MetaGraph's tags
   * @param signature the signature {@link #info()} analyses (default: serving_default)
   * @param allowUnsafeOps load a model holding ops that touch files, the network or Python
   * @param runtime the runtime's device, rewrites and threads
   */
  public record Loader(Path dir, Set<String> tags, Optional<String> signature, boolean allowUnsafeOps,
      RuntimeOptions runtime) {
    public Loader {
      java.util.Objects.requireNonNull(dir, "dir");
      tags = Set.copyOf(tags);
      java.util.Objects.requireNonNull(signature, "signature");
      java.util.Objects.requireNonNull(runtime, "runtime");
    }

    public Loader withTags(Set<String> t) {
      return new Loader(dir, t, signature, allowUnsafeOps, runtime);
    }

    public Loader withSignature(String name) {
      return new Loader(dir, tags, Optional.of(name), allowUnsafeOps, runtime);
    }

    /** Trusts a model whose ops touch files, the network or Python (loading runs its init op). */
    public Loader allowingUnsafeOps(boolean allow) {
      return new Loader(dir, tags, signature, allow, runtime);
    }

    public Loader withRuntime(RuntimeOptions r) {
      return new Loader(dir, tags, signature, allowUnsafeOps, r);
    }

    /**
     * Opens the model. Before the runtime loads anything (loading runs the model's restore and
     * init ops), the graph and its functions are audited ({@link UnsafeOps}): a model holding ops
     * that read or write files, use the network or run Python outside the saver is refused unless
     * {@link #allowUnsafeOps}.
     *
     * @throws InvalidModelException when the directory cannot be used or holds refused ops; nothing
     *     was loaded then
     * @throws IllegalArgumentException when the runtime options ask for a GPU the runtime does not see
     */
    public KerasSavedModel load() {
      return KerasSavedModel.load(this);
    }
  }

  private static KerasSavedModel load(Loader loader) {
    Path dir = loader.dir();
    Set<String> tags = loader.tags();
    Optional<String> signature = loader.signature();
    boolean allowUnsafeOps = loader.allowUnsafeOps();
    RuntimeOptions runtime = loader.runtime();
    RuntimeOptions resolved = Devices.resolve(runtime);
    SavedModelDirectory files = SavedModelDirectory.open(dir, tags);
    UnsafeOps.Report audit = UnsafeOps.audit(files.metaGraph());
    if (!allowUnsafeOps && !audit.clean()) {
      throw new InvalidModelException(dir, dir + " holds ops a model should not run when loaded or served: "
          + audit.summary() + ". It was not loaded", Setting.UNSAFE_OPS,
          "if you trust this model, load it with allowingUnsafeOps(true)");
    }
    ModelInfo info = SavedModelInspector.inspect(files, signature);
    SavedModelBundle bundle;
    try {
      bundle = SavedModelBundle.loader(dir.toString()).withTags(tags.toArray(new String[0]))
          .withConfigProto(resolved.toConfig()).load();
    } catch (TensorFlowException e) {
      java.util.regex.Matcher checksum = java.util.regex.Pattern.compile("shard (\\d+) \\(\\d+ bytes\\): Checksum does"
          + " not match").matcher(String.valueOf(e.getMessage()));
      if (checksum.find() && files.checkpoint().isPresent()) {
        // the restore op checks each tensor's CRC32C; name the shard file it read, not the prefix
        Path data = dir.resolve("variables").resolve(String.format(java.util.Locale.ROOT,
            "variables.data-%05d-of-%05d", Integer.parseInt(checksum.group(1)),
            files.checkpoint().get().header().getNumShards()));
        throw new InvalidModelException(data, data + " is damaged: the checksum of a tensor in it does not match"
            + " the one variables.index records. Re-copy or re-export the SavedModel.", e);
      }
      throw new InvalidModelException(dir, "TensorFlow could not load " + dir + ": " + firstLine(e.getMessage())
          + ". Check that it was exported completely (saved_model.pb and variables/) with TensorFlow 2.18 or older.", e);
    }
    KerasSavedModel model = new KerasSavedModel(info, files, bundle, loader);
    try {
      CapturedVariables.restoreMissing(files, bundle.graph(), bundle.session());
      model.releaseAliases();
    } catch (RuntimeException e) {
      bundle.close();
      throw e;
    }
    return model;
  }

  private Map<String, String> aliases;

  /**
   * Handles the model's saver writes that loading made as copies of handles the serving function
   * reads (alias to source), found by {@code SaverMap}: a Keras 3 {@code model.export()} holds every
   * weight two or three times (GPT-2 124M: 662 handles for 215 variables). Only the sources are
   * read and trained; an export copies each source into its aliases just before the saver runs.
   * Aliases that some signature's call reads directly are left out.
   */
  public synchronized Map<String, String> saverAliases() {
    checkOpen();
    if (aliases == null) {
      aliases = SaverAliases.find(info, files);
    }
    return aliases;
  }

  /**
   * Frees the aliases' memory (their values are copies of the sources until an export writes
   * them again; {@code AssignVariableOp} recreates a freed handle). Run after loading and after
   * every export.
   */
  public void releaseAliases() {
    Map<String, String> a = saverAliases();
    if (a.isEmpty()) {
      return;
    }
    org.tensorflow.op.Ops tf = org.tensorflow.op.Ops.create(bundle.graph()).withSubScope("finetune_release_aliases");
    Session.Runner runner = bundle.session().runner();
    for (String handle : a.keySet()) {
      runner.addTarget(tf.destroyResourceOp(bundle.graph().operation(handle).output(0),
          org.tensorflow.op.core.DestroyResourceOp.ignoreLookupError(true)));
    }
    runner.run().close();
  }

  /** The model's files as read (MetaGraph, checkpoint index). */
  public SavedModelDirectory files() {
    return files;
  }

  /** What the model holds, read from its files. */
  public ModelInfo info() {
    return info;
  }

  public Map<String, SignatureInfo> signatures() {
    return info.signatures();
  }

  /**
   * Runs {@code signature} on {@code inputs} (keyed by the signature's input names). The returned
   * tensors, keyed by output name, belong to the caller, who closes them; the inputs stay the
   * caller's too.
   *
   * @throws IllegalArgumentException when the signature or an input name, dtype or shape does not fit
   */
  public Map<String, Tensor> predict(String signature, Map<String, ? extends Tensor> inputs) {
    checkOpen();
    SignatureInfo sig = info.signatures().get(signature);
    if (sig == null) {
      throw new IllegalArgumentException("no signature '" + signature + "'; the model has "
          + String.join(", ", info.signatures().keySet()));
    }
    checkInputs(sig, inputs);
    Session.Runner runner = bundle.session().runner();
    for (TensorSpec in : sig.inputs()) {
      runner.feed(in.tensorName(), inputs.get(in.key()));
    }
    for (TensorSpec out : sig.outputs()) {
      runner.fetch(out.tensorName());
    }
    Result result = runner.run();
    // The tensors go to the caller, who closes each; the Result itself holds nothing else.
    Map<String, Tensor> outputs = new LinkedHashMap<>();
    for (int i = 0; i < sig.outputs().size(); i++) {
      outputs.put(sig.outputs().get(i).key(), result.get(i));
    }
    return outputs;
  }

  /**
   * Like {@link #predict(String, Map)} on arrays: the inputs become tensors for the call and every
   * output is copied out of the runtime; nothing native outlives the call. Thread-safe.
   */
  public Map<String, org.finetune.data.NpyArray> predictArrays(String signature,
      Map<String, org.finetune.data.NpyArray> inputs) {
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    try {
      inputs.forEach((k, v) -> tensors.put(k, v.toTensor()));
      Map<String, Tensor> outputs = predict(signature, tensors);
      Map<String, org.finetune.data.NpyArray> arrays = new LinkedHashMap<>();
      try {
        outputs.forEach((k, v) -> arrays.put(k, org.finetune.data.NpyArray.of(v)));
      } finally {
        outputs.values().forEach(Tensor::close);
      }
      return arrays;
    } finally {
      tensors.values().forEach(Tensor::close);
    }
  }

  /** Input key to the shape of one example, for the free dimensions of the flat graphs' inputs. */
  private final Map<String, long[]> fixedShapes = new LinkedHashMap<>();

  /**
   * Fixes the dimensions the signature leaves free (after the batch) to the shape of one example
   * of the data, by input key: a recurrent loop over a sequence of free length can then be
   * unrolled and trained. Only for training on data of one shape; must come before the first
   * flat signature is built.
   *
   * @return the inputs whose shape this changed, each as "key (before) -> (after)"; empty when
   *     every given dimension was already fixed
   * @throws IllegalStateException when a flat signature was already built
   */
  public synchronized List<String> fixInputShapes(Map<String, long[]> shapes) {
    checkOpen();
    List<String> changed = new ArrayList<>();
    for (TensorSpec spec : info.selectedSignature().inputs()) {
      TensorSpec after = shapes.containsKey(spec.key()) ? spec.withFreeDimensions(shapes.get(spec.key())) : spec;
      if (!after.equals(spec)) {
        changed.add(spec.key() + " " + spec.shapeText() + " -> " + after.shapeText());
      }
    }
    if (!changed.isEmpty()) {
      if (!flat.isEmpty()) {
        throw new IllegalStateException("input shapes are fixed before a flat signature is built");
      }
      fixedShapes.putAll(shapes);
    }
    return changed;
  }

  /**
   * The signature inlined into one flat, differentiable graph beside the original, in this
   * model's graph (built once per signature; later calls return the same).
   */
  public synchronized FlatSignature flatSignature(String signature) {
    checkOpen();
    FlatSignature existing = flat.get(signature);
    if (existing != null) {
      return existing;
    }
    SignatureInfo sig = info.signatures().get(signature);
    if (sig == null) {
      throw new IllegalArgumentException("no signature '" + signature + "'; the model has "
          + String.join(", ", info.signatures().keySet()));
    }
    Map<String, String> inputs = new LinkedHashMap<>();
    sig.inputs().forEach(t -> inputs.put(t.key(), t.tensorName()));
    Map<String, String> outputs = new LinkedHashMap<>();
    sig.outputs().forEach(t -> outputs.put(t.key(), t.tensorName()));
    FunctionFlattener.FlatGraph graph = FunctionFlattener.flatten(files.metaGraph().getGraphDef(), inputs, outputs,
        fixedShapes, files.metaGraph().getObjectGraphDef(), OpDefs.runtime());
    graph = new FunctionFlattener.FlatGraph(org.finetune.graph.GroupedConvolutions.rewrite(graph.graphDef()),
        graph.inputs(), graph.outputs(), graph.variables(), graph.loops(), graph.customGradients());
    String prefix = "finetune_flat_" + signature;
    // Training goes through this copy: its matrix products get the faster gradients of
    // MarkedGradients. Exports are written from the clean graph FlatSignature keeps.
    org.finetune.graph.CustomGradients.ensureRegistered();
    bundle.graph().importGraphDef(org.finetune.graph.MarkedGradients.forTraining(graph.graphDef()), prefix);
    FlatSignature result = FlatSignature.imported(signature, prefix, graph);
    flat.put(signature, result);
    return result;
  }

  /**
   * The signature's flat graph changed by {@code rewrite} (which only adds nodes and rewires
   * inputs), imported beside the plain one under its own prefix: for training through a changed
   * graph (low-rank adapters) while exports and analysis keep the plain graph, whose nodes all
   * exist in the changed one under the same local names. Built once per signature and
   * {@code variant}; later calls return the same.
   *
   * @return the plain flat signature's description with this import's prefix, and the rewritten
   *     graph as it was imported
   */
  public synchronized Variant flatSignature(String signature, String variant,
      java.util.function.UnaryOperator<org.tensorflow.proto.GraphDef> rewrite) {
    checkOpen();
    FlatSignature plain = flatSignature(signature);
    String key = signature + "#" + variant;
    Variant existing = variants.get(key);
    if (existing != null) {
      return existing;
    }
    org.tensorflow.proto.GraphDef changed = rewrite.apply(plain.graphDef());
    String prefix = plain.prefix() + "_" + variant;
    bundle.graph().importGraphDef(org.finetune.graph.MarkedGradients.forTraining(changed), prefix);
    Variant result = new Variant(plain.withPrefix(prefix), changed);
    variants.put(key, result);
    return result;
  }

  /** A rewritten flat signature: names under its own prefix, and the graph as imported (local names). */
  public record Variant(FlatSignature flat, org.tensorflow.proto.GraphDef rewritten) {}

  private final Map<String, Variant> variants = new LinkedHashMap<>();

  /**
   * Runs named tensors of this model's graph: feeds by tensor name, fetches by tensor name.
   * Returned tensors belong to the caller. For the training code and tests, which address the
   * flat graph directly.
   */
  public Map<String, Tensor> run(Map<String, ? extends Tensor> feeds, java.util.List<String> fetches) {
    checkOpen();
    Session.Runner runner = bundle.session().runner();
    feeds.forEach(runner::feed);
    fetches.forEach(runner::fetch);
    Result result = runner.run();
    Map<String, Tensor> outputs = new LinkedHashMap<>();
    for (int i = 0; i < fetches.size(); i++) {
      outputs.put(fetches.get(i), result.get(i));
    }
    return outputs;
  }

  /** The runtime graph; for the training code in this library, which adds ops to it. */
  public org.tensorflow.Graph graph() {
    checkOpen();
    return bundle.graph();
  }

  /** The runtime session; for the training code in this library. */
  public Session session() {
    checkOpen();
    return bundle.session();
  }

  /** Runs the default signature ({@link ModelInfo#signature()}). Caller closes the results. */
  public Map<String, Tensor> predict(Map<String, ? extends Tensor> inputs) {
    return predict(info.signature(), inputs);
  }

  private static void checkInputs(SignatureInfo sig, Map<String, ? extends Tensor> inputs) {
    Set<String> expected = new TreeSet<>();
    sig.inputs().forEach(t -> expected.add(t.key()));
    if (!expected.equals(new TreeSet<>(inputs.keySet()))) {
      throw new IllegalArgumentException("signature '" + sig.name() + "' takes inputs " + expected + ", got "
          + new TreeSet<>(inputs.keySet()));
    }
    List<String> problems = new ArrayList<>();
    for (TensorSpec spec : sig.inputs()) {
      Tensor t = inputs.get(spec.key());
      String dtype = DTypes.name(t.dataType());
      if (!dtype.equals(spec.dtype())) {
        problems.add(spec.key() + " must be " + spec.dtype() + ", got " + dtype);
        continue;
      }
      long[] dims = t.shape().asArray();
      if (spec.rankKnown() && !fits(spec.shape(), dims)) {
        problems.add(spec.key() + " must have shape " + spec.shapeText() + ", got " + t.shape());
      }
    }
    if (!problems.isEmpty()) {
      throw new IllegalArgumentException("inputs of '" + sig.name() + "' do not fit: " + String.join("; ", problems));
    }
  }

  private static boolean fits(List<Long> spec, long[] dims) {
    if (spec.size() != dims.length) {
      return false;
    }
    for (int i = 0; i < dims.length; i++) {
      if (spec.get(i) >= 0 && spec.get(i) != dims[i]) {
        return false;
      }
    }
    return true;
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("this KerasSavedModel (" + info.dir() + ") is closed");
    }
  }

  private static String firstLine(String message) {
    if (message == null) {
      return "no message";
    }
    int nl = message.indexOf('\n');
    return nl < 0 ? message : message.substring(0, nl);
  }

  @Override
  public void close() {
    if (!closed) {
      closed = true;
      bundle.close();
    }
  }
}
