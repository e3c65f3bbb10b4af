package org.finetune.export;

import com.google.common.hash.Hashing;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.finetune.graph.TensorTypes;
import org.finetune.hint.BadSettingException;
import org.finetune.hint.Setting;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.CheckpointKeys;
import org.finetune.savedmodel.SavedModelDirectory;
import org.finetune.savedmodel.SaverMap;
import org.finetune.savedmodel.VariableInfo;
import org.finetune.train.PlanJson;
import org.finetune.train.Trainer;
import org.tensorflow.Graph;
import org.tensorflow.GraphOperation;
import org.tensorflow.Operand;
import org.tensorflow.Session;
import org.tensorflow.TensorFlow;
import org.tensorflow.op.Op;
import org.tensorflow.op.Ops;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.FingerprintDef;
import org.tensorflow.types.TString;
import org.tensorflow.types.family.TType;

/**
 * Writes a trained model back as a SavedModel that Python loads: with the base model's own graph
 * and signatures when the architecture is unchanged ({@link ExportResult.Mode#SAME_ARCHITECTURE}),
 * or as a new graph ending in the new head ({@link ExportResult.Mode#NEW_HEAD}, see
 * {@link HeadExport}). Every export carries {@code assets/finetune.json}, its provenance, and is
 * written into a temporary sibling directory that is renamed into place when complete; the base
 * model's directory is only read.
 */
public final class Exporter {
  /** The provenance file every export carries, under {@code assets/}. */
  public static final String PROVENANCE = "finetune.json";

  private Exporter() {}

  /** Exports what {@code trainer} trained: a new head's export when its plan has a head, else the same architecture. */
  public static ExportResult export(Trainer trainer, Path out, ExportOptions options) {
    JsonObject plan = PlanJson.toJson(trainer.plan());
    JsonObject training = training(trainer.iterations(), options);
    trainer.adapters().ifPresent(a -> training.addProperty("low_rank_adapters", "merged into their kernels: " + a));
    // Low-rank adapters are folded into their kernels for the export: the base model's architecture.
    return trainer.withAdaptersMerged(() -> {
      if (trainer.headPlacement().isPresent()) {
        return write(trainer.model(), out, options, ExportResult.Mode.NEW_HEAD, plan, training,
            dir -> HeadExport.write(trainer, dir));
      }
      return sameArchitecture(trainer.model(), out, options, plan, training);
    });
  }

  /**
   * Writes the trainer's low-rank adapters apart from the base model: a folder of
   * {@link org.finetune.train.AdapterSet} naming the base's directory digest, written whole or not
   * at all. {@link org.finetune.train.AdaptedModel} (or {@code serving.Predictor}) applies them to
   * an open base.
   *
   * @return the folder written
   */
  public static Path exportAdapters(Trainer trainer, Path out, ExportOptions options) {
    Path base = trainer.model().info().dir().toAbsolutePath().normalize();
    Path target = out.toAbsolutePath().normalize();
    if (target.startsWith(base) || base.startsWith(target)) {
      throw new IllegalArgumentException("the output " + target + " overlaps the base model (" + base + ")");
    }
    try (AtomicDirectory atomic = AtomicDirectory.begin(target, options.overwrite())) {
      trainer.adapterSet().withBaseDigest(DirectoryDigest.of(base)).writeInto(atomic.dir());
      atomic.commit();
      return target;
    } catch (FileAlreadyExistsException e) {
      throw exists(target, e);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the adapters " + target + ": " + e.getMessage(), e);
    }
  }

  private static BadSettingException exists(Path target, FileAlreadyExistsException cause) {
    BadSettingException bad = new BadSettingException("the output " + target + " exists", Setting.EXPORT,
        "choose another or allow overwriting it");
    bad.initCause(cause);
    return bad;
  }

  /** Exports {@code model} with its weights as they are now in the runtime, same architecture. */
  public static ExportResult export(KerasSavedModel model, Path out, ExportOptions options) {
    return sameArchitecture(model, out, options, null, training(-1, options));
  }

  private static ExportResult sameArchitecture(KerasSavedModel model, Path out, ExportOptions options,
      JsonObject plan, JsonObject training) {
    return write(model, out, options, ExportResult.Mode.SAME_ARCHITECTURE, plan, training,
        dir -> sameArchitecture(model, dir));
  }

  /** Writes the SavedModel's content into {@code dir}; returns the number of variables saved. */
  private interface Content {
    int write(Path dir) throws IOException;
  }

  private static ExportResult write(KerasSavedModel model, Path out, ExportOptions options, ExportResult.Mode mode,
      JsonObject plan, JsonObject training, Content content) {
    Path base = model.info().dir().toAbsolutePath().normalize();
    Path target = (options.version().isPresent() ? out.resolve(Long.toString(options.version().getAsLong())) : out)
        .toAbsolutePath().normalize();
    if (target.startsWith(base) || base.startsWith(target)) {
      throw new IllegalArgumentException("the output " + target + " overlaps the model being exported (" + base
          + "); the base model's directory is never written to: choose another output");
    }
    try (AtomicDirectory atomic = AtomicDirectory.begin(target, options.overwrite())) {
      int variables = content.write(atomic.dir());
      Files.createDirectories(atomic.dir().resolve("assets"));
      JsonObject provenance = provenance(model, mode, plan, training, options);
      Files.writeString(atomic.dir().resolve("assets").resolve(PROVENANCE),
          new GsonBuilder().setPrettyPrinting().serializeNulls().create().toJson(provenance) + "\n");
      long bytes;
      try (Stream<Path> walk = Files.walk(atomic.dir())) {
        bytes = walk.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
      }
      atomic.commit();
      boolean tfKeras = Files.isRegularFile(base.resolve("keras_metadata.pb"));
      boolean severalInputs = model.info().selectedSignature().inputs().size() > 1;
      return new ExportResult(target, mode, variables, bytes, ExportResult.python(target, tfKeras,
          mode == ExportResult.Mode.NEW_HEAD, severalInputs));
    } catch (FileAlreadyExistsException e) {
      throw exists(target, e);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the export " + target + ": " + e.getMessage(), e);
    }
  }

  /**
   * The base model's files with the runtime's weights: every handle the saver writes first gets
   * the value of the variable it stands for (the handles loading copied from, or restored from
   * the same checkpoint key as, the handles the serving function reads), then the model's own
   * saver writes {@code variables/}.
   */
  private static int sameArchitecture(KerasSavedModel model, Path dir) throws IOException {
    SavedModelDirectory files = model.files();
    SaverMap saver = SaverMap.of(files).orElseThrow(() -> new IllegalArgumentException(model.info().dir()
        + " has no saver (saver_def), so its variables cannot be written back in its own format"));
    syncAliases(model, files, saver);
    Path variables = dir.resolve("variables");
    Files.createDirectories(variables);
    try (TString prefix = TString.scalarOf(variables.resolve("variables").toString())) {
      model.session().runner().feed(saver.filenameTensor(), prefix).fetch(saver.saveTensor()).run().close();
    }
    model.releaseAliases();
    Path src = model.info().dir();
    try (Stream<Path> walk = Files.walk(src)) {
      for (Path p : walk.toList()) {
        Path rel = src.relativize(p);
        if (rel.toString().isEmpty() || rel.startsWith("variables") || rel.toString().equals("fingerprint.pb")) {
          continue;
        }
        if (Files.isDirectory(p)) {
          Files.createDirectories(dir.resolve(rel.toString()));
        } else if (Files.isRegularFile(p)) {
          Files.copy(p, dir.resolve(rel.toString()));
        }
      }
    }
    Path fingerprint = src.resolve("fingerprint.pb");
    if (Files.isRegularFile(fingerprint)) {
      // saved_model.pb is unchanged, so is everything fingerprinted from it; the checkpoint is new.
      FingerprintDef old = FingerprintDef.parseFrom(Files.readAllBytes(fingerprint));
      byte[] index = Files.readAllBytes(variables.resolve("variables.index"));
      FingerprintDef updated = old.toBuilder()
          .setCheckpointHash(Hashing.farmHashFingerprint64().hashBytes(index).asLong()).build();
      Files.write(dir.resolve("fingerprint.pb"), updated.toByteArray());
    }
    return saver.handleByKey().size();
  }

  /** Copies, in the runtime, the value of each handle the serving function reads into its aliases the saver writes. */
  @SuppressWarnings("unchecked")
  private static void syncAliases(KerasSavedModel model, SavedModelDirectory files, SaverMap saver) {
    Graph graph = model.graph();
    Map<String, String> syncs = model.saverAliases();
    if (syncs.isEmpty()) {
      return;
    }
    Ops tf = Ops.create(graph).withSubScope("finetune_export_sync");
    List<Op> assigns = new ArrayList<>();
    syncs.forEach((target, source) -> {
      GraphOperation from = graph.operation(source);
      DataType dtype = from.attributes().getAttrType("dtype");
      Class<? extends TType> type = TensorTypes.of(dtype);
      Operand<? extends TType> value = tf.readVariableOp((Operand<? extends TType>) from.output(0), type);
      assigns.add(tf.assignVariableOp((Operand<? extends TType>) graph.operation(target).output(0), value));
    });
    Session.Runner runner = model.session().runner();
    assigns.forEach(runner::addTarget);
    runner.run();
  }

  private static JsonObject training(long steps, ExportOptions options) {
    JsonObject t = new JsonObject();
    if (steps >= 0) {
      t.addProperty("optimizer_steps", steps);
    }
    if (options.epochs().isPresent()) {
      t.addProperty("epochs", options.epochs().getAsLong());
    }
    JsonObject metrics = new JsonObject();
    options.metrics().forEach(metrics::addProperty);
    t.add("metrics", metrics);
    options.datasetDigest().ifPresent(d -> t.addProperty("dataset_digest", d));
    return t;
  }

  private static JsonObject provenance(KerasSavedModel model, ExportResult.Mode mode, JsonObject plan,
      JsonObject training, ExportOptions options) throws IOException {
    JsonObject p = new JsonObject();
    p.addProperty("format", "finetune-export/1");
    p.addProperty("created", Instant.now().toString());
    p.addProperty("mode", mode.name().toLowerCase(java.util.Locale.ROOT));
    JsonObject base = new JsonObject();
    Path dir = model.info().dir().toAbsolutePath().normalize();
    base.addProperty("path", dir.toString());
    base.addProperty("digest", DirectoryDigest.of(dir));
    base.addProperty("export_path", model.info().exportPath().id());
    base.addProperty("export_path_description", model.info().exportPath().description());
    base.addProperty("signature", model.info().signature());
    Path earlier = dir.resolve("assets").resolve(PROVENANCE);
    if (Files.isRegularFile(earlier)) {
      try {
        base.add("provenance", JsonParser.parseString(Files.readString(earlier, StandardCharsets.UTF_8)));
      } catch (RuntimeException e) {
        base.addProperty("provenance_unreadable", e.getMessage());
      }
    }
    p.add("base", base);
    if (plan != null) {
      p.add("plan", plan);
    }
    p.add("training", training);
    JsonObject versions = new JsonObject();
    String v = Exporter.class.getPackage().getImplementationVersion();
    versions.addProperty("finetune", v == null ? "dev" : v);
    versions.addProperty("tensorflow", TensorFlow.version());
    versions.addProperty("java", System.getProperty("java.version"));
    p.add("versions", versions);
    options.extra().ifPresent(e -> p.add("extra", e));
    return p;
  }
}
