package org.finetune.job;

import com.google.gson.GsonBuilder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.Set;
import java.util.TreeSet;
import org.finetune.data.ClipFolder;
import org.finetune.data.ImageDataset;
import org.finetune.data.ImageFolder;
import org.finetune.data.ImageOps;
import org.finetune.data.TextCorpus;
import org.finetune.data.TextDataset;
import org.finetune.export.Checkpoint;
import org.finetune.export.CheckpointCallback;
import org.finetune.export.DirectoryDigest;
import org.finetune.export.ExportOptions;
import org.finetune.export.ExportResult;
import org.finetune.export.Exporter;
import org.finetune.export.Provenance;
import org.finetune.export.TrainingPosition;
import org.finetune.hint.Setting;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.finetune.text.Gpt2Tokenizer;
import org.finetune.train.CsvLogger;
import org.finetune.train.CurvesPlot;
import org.finetune.train.EarlyStopping;
import org.finetune.train.FeatureCache;
import org.finetune.train.Fit;
import org.finetune.train.HeadSpec;
import org.finetune.train.LossSpec;
import org.finetune.train.OutputLoss;
import org.finetune.train.PlanJson;
import org.finetune.train.ReduceLrOnPlateau;
import org.finetune.train.TensorBoardLogger;
import org.finetune.train.Trainer;
import org.finetune.train.TrainingPlan;

/** One run of a {@link FineTuneJob}: the same steps for images, clips, text and arrays, each with its data. */
final class JobRun {
  /** In-memory bound of the feature cache before it spills to a mapped file. */
  private static final long CACHE_BYTES = 1L << 30;

  private final FineTuneJob job;
  private final KerasSavedModel model;
  private final JobListener listener;

  JobRun(FineTuneJob job, KerasSavedModel model) {
    this.job = job;
    this.model = model;
    this.listener = job.settings.listener;
  }

  FineTuneResult run() {
    job.settings.exportTo.ifPresent(out -> {
      if (Files.exists(out) && !job.settings.overwrite) {
        throw new JobException("the output " + out + " exists", Setting.EXPORT,
            "choose another or let the job overwrite it");
      }
    });
    if (job.settings.data instanceof JobData.Arrays arrays) {
      return new ArrayRun(this, job, model).run(arrays);
    }
    return job.settings.data instanceof JobData.Text text ? text(text) : images();
  }

  /**
   * Labelled examples split for training and validation: images (one item each) or clips
   * ({@code frames} consecutive items each).
   */
  private record Examples(Path root, List<String> classes, List<ImageFolder.Item> train,
      List<ImageFolder.Item> validation, int frames) {
    int trainExamples() {
      return train.size() / Math.max(1, frames);
    }

    int valExamples() {
      return validation.size() / Math.max(1, frames);
    }

    ImageDataset open(List<ImageFolder.Item> items, ImageDataset.Options options) {
      if (frames == 0) {
        return ImageDataset.open(items, options);
      }
      try {
        return ImageDataset.clips(items, frames, options);
      } catch (IllegalArgumentException e) {
        throw new JobException(e.getMessage(), Setting.AUGMENTATION, "train clips without augmentation");
      }
    }
  }

  private Examples examples(double valSplit) {
    try {
      if (job.settings.data instanceof JobData.Clips clips) {
        ClipFolder folder = ClipFolder.scan(clips.root());
        ClipFolder.Split split = folder.split(valSplit, job.settings.seed);
        return new Examples(folder.root(), folder.classes(), ClipFolder.frames(split.train(), clips.frames()),
            ClipFolder.frames(split.validation(), clips.frames()), clips.frames());
      }
      ImageFolder folder = ImageFolder.scan(((JobData.Images) job.settings.data).root());
      ImageFolder.Split split = folder.split(valSplit, job.settings.seed);
      return new Examples(folder.root(), folder.classes(), split.train(), split.validation(), 0);
    } catch (JobException e) {
      throw e;
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.DATA, e);
    }
  }

  private FineTuneResult images() {
    Examples data = examples(job.settings.validationSplit.orElse(0.2));
    int batchSize = job.settings.batchSize.orElse(32);
    Optional<Checkpoint.Info> resume = resume();
    ImageInput image = ImageInput.of(model, job.settings.imageSize);
    ModelFamily family = ModelFamily.detect(model);
    ImageOps.Preprocess preprocess = job.settings.preprocess.or(family::preprocess).orElse(ImageOps.Preprocess.NONE);
    if (!ImageOps.fits(preprocess, image.channels())) {
      throw new JobException("the model takes grey images and " + preprocess.name().toLowerCase(Locale.ROOT)
          + " preprocessing subtracts a mean per RGB channel", Setting.PREPROCESS, "use tf or none");
    }
    long totalSteps = (long) job.settings.epochs * ((data.trainExamples() + batchSize - 1) / batchSize);
    TrainingPlan plan = resume.map(Checkpoint.Info::plan).or(() -> job.settings.plan)
        .orElseGet(() -> plan(head(family, data), family.groups(), LossSpec.SPARSE_CATEGORICAL_CROSSENTROPY, totalSteps));
    OptionalInt outputs = ImageInput.outputClasses(model);
    if (plan.head().isEmpty() && outputs.isPresent() && data.classes().size() > outputs.getAsInt()) {
      throw new JobException(model.info().dir() + " scores " + outputs.getAsInt() + " classes but " + data.root()
          + " has " + data.classes().size() + " class folders, so labels would run past its output",
          Setting.HEAD, "put a new classifier with one output per class folder on it");
    }
    ImageDataset.Options options;
    try {
      options = ImageDataset.Options.of(image.height(), image.width(), preprocess, batchSize)
          .channels(image.channels()).seeded(job.settings.seed)
          .strictly(job.settings.strict).flipping(job.settings.flip).zooming(job.settings.zoom).brightening(job.settings.brightness);
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.AUGMENTATION, e);
    }
    boolean video = data.frames() > 0;
    try (ImageDataset train = data.open(data.train(), options);
        ImageDataset val = data.validation().isEmpty() ? null
            : data.open(data.validation(), options.shuffled(false).flipping(false).zooming(0).brightening(0));
        Trainer trainer = new Trainer(model, plan)) {
      // Said once the data has been read, so that a bad image (when strict) comes before anything else.
      listener.message(String.format(Locale.ROOT, "Model: %s (%s, input %s %dx%d%s, preprocessing %s)",
          model.info().dir(), family.name(), image.input(), image.height(), image.width(),
          image.channels() == 1 ? " grey" : "",
          preprocess.name().toLowerCase(Locale.ROOT)));
      if (job.settings.preprocess.isEmpty() && family.preprocess().isEmpty()) {
        listener.warning("the model is of no known family, so its images are fed as decoded (0-255 "
            + (image.channels() == 1 ? "grey" : "RGB") + ", no"
            + " preprocessing); set the preprocessing it was trained with if it expects another");
      }
      listener.message(String.format(Locale.ROOT, "Data: %s: %d classes (%s), %d %s for training, %d for validation",
          data.root(), data.classes().size(), String.join(", ", data.classes()), data.trainExamples(),
          video ? "clips of " + data.frames() + " frames" : "images", data.valExamples()));
      listener.message("Plan: " + new GsonBuilder().disableHtmlEscaping().create().toJson(PlanJson.toJson(plan)));
      trainer.adapters().ifPresent(a -> listener.message("Adapters: " + a));
      Set<Path> skipped = new TreeSet<>(train.skipped());
      if (val != null) {
        skipped.addAll(val.skipped());
      }
      if (!skipped.isEmpty()) {
        listener.warning("skipped " + skipped.size() + " unreadable image(s): " + String.join(", ",
            skipped.stream().map(Path::toString).toList()));
      }
      String monitor = val != null ? "val_loss" : "loss";
      Loop loop = loop(trainer, resume, monitor, plan);
      // The new head alone trains and nothing is augmented: the base's features never change, so
      // they are computed once and the runtime runs only the head.
      boolean cache = plan.stages().size() == 1 && trainer.headOnly(0) && !options.augmented() && job.settings.featureCache;
      List<Fit.Epoch> history;
      if (cache) {
        listener.message("Caching the base's features: only the new head trains and nothing is augmented");
        try (FeatureCache trainCache = FeatureCache.build(trainer, train, image.input(), CACHE_BYTES);
            FeatureCache valCache = val == null ? null : FeatureCache.build(trainer, val, image.input(), CACHE_BYTES)) {
          history = loop.fit(trainCache, Optional.ofNullable(valCache));
        }
      } else {
        history = loop.fit(Fit.images(train, image.input()),
            Optional.ofNullable(val).map(v -> Fit.images(v, image.input())));
      }
      Provenance.Task task = Provenance.Task.classifier(job.settings.data.task(), data.classes(), preprocess,
          video ? OptionalInt.of(data.frames()) : OptionalInt.empty(), data.root());
      return loop.finish(history, task, DirectoryDigest.of(data.root()));
    }
  }

  /** The new head the job asks for (one output per class); for clips always one, over the frames. */
  private Optional<HeadSpec> head(ModelFamily family, Examples data) {
    if (!job.settings.newHead && data.frames() == 0) {
      return Optional.empty();
    }
    HeadSpec spec = placed(HeadSpec.classifier(data.classes().size()).seed(job.settings.seed), family);
    return Optional.of(data.frames() > 0 ? spec.clips(data.frames(), job.settings.temporal) : spec);
  }

  /**
   * A new head where the job puts it: on the named layer or the family's feature layer, else in
   * place of the model's final classifier (said in a line), with the hidden layer the job asks for.
   */
  HeadSpec placed(HeadSpec head, ModelFamily family) {
    HeadSpec spec = head;
    Optional<String> at = job.settings.featuresAt.or(family::featureLayer);
    spec = spec.at(at.orElseGet(() -> classifierInput(family)));
    if (job.settings.hiddenUnits.isPresent()) {
      spec = spec.hidden(job.settings.hiddenUnits.getAsInt(), job.settings.dropout);
    }
    return spec;
  }

  /**
   * The layer whose output the model's final classifier takes, for a model whose family names no
   * feature layer; a model whose output is no classifier's is refused with its last layers listed.
   */
  private String classifierInput(ModelFamily family) {
    FlatSignature flat = model.flatSignature(model.info().signature());
    Optional<org.finetune.graph.ClassifierTop> top = ApplicationFamilies.classifierTop(model.info(), flat);
    Optional<String> layer = top.flatMap(t -> ApplicationFamilies.layerOutputting(flat, t.input()));
    if (layer.isEmpty()) {
      List<String> layers = model.info().layers().stream().map(org.finetune.savedmodel.LayerInfo::name).toList();
      throw new JobException("the model is " + (family.known() ? "a " + family.name() + " whose feature layer was not"
          + " found" : "of no known family") + (top.isEmpty() ? " and its output is not a classifier's (a softmax or"
          + " sigmoid on a weighted layer)" : " and no layer outputs what its classifier " + top.get().classifierLayer()
          + " takes") + ", so where a new head goes cannot be inferred; its last layers with weights are "
          + String.join(", ", layers.subList(Math.max(0, layers.size() - 6), layers.size())), Setting.FEATURES,
          "name the layer whose output the new head takes");
    }
    listener.message("Head: in place of the final layer " + top.get().classifierLayer()
        + top.get().activation().map(a -> " (" + a.toLowerCase(Locale.ROOT) + ")").orElse(" (no activation)")
        + ", on the output of layer " + layer.get() + (family.known() ? "" : " (the model is of no known family)"));
    return layer.get();
  }

  private TrainingPlan plan(Optional<HeadSpec> head, List<String> groups, LossSpec loss, long totalSteps) {
    return plan(head, groups, loss, List.of(), totalSteps);
  }

  /** The job's plan (see {@link JobPlans#plan}), its errors as the job's. */
  TrainingPlan plan(Optional<HeadSpec> head, List<String> groups, LossSpec loss, List<OutputLoss> outputs,
      long totalSteps) {
    try {
      return JobPlans.plan(job, head, groups, loss, outputs, totalSteps);
    } catch (JobException e) {
      throw e;
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.PLAN, e);
    }
  }

  private FineTuneResult text(JobData.Text text) {
    TextCorpus train;
    Optional<TextCorpus> validation;
    try {
      TextCorpus all = TextCorpus.read(text.train(), job.settings.strict);
      if (!text.validation().isEmpty()) {
        if (job.settings.validationSplit.isPresent()) {
          throw new JobException("validation text was given and a share of the documents to hold out",
              Setting.VALIDATION, "give one of them");
        }
        train = all;
        validation = Optional.of(TextCorpus.read(text.validation(), job.settings.strict));
      } else {
        double split = job.settings.validationSplit.orElse(0.1);
        if (split == 0) {
          train = all;
          validation = Optional.empty();
        } else {
          TextCorpus[] parts = all.split(split, job.settings.seed);
          train = parts[0];
          validation = Optional.of(parts[1]);
        }
      }
    } catch (JobException e) {
      throw e;
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.DATA, e);
    }
    train.warnings().forEach(listener::warning);
    validation.ifPresent(v -> v.warnings().forEach(listener::warning));
    Optional<Checkpoint.Info> resume = resume();
    LanguageModelInput lm = LanguageModelInput.of(model);
    ModelFamily family = ModelFamily.detect(model);
    int length = lm.blockLength(job.settings.sequenceLength);
    TextDataset.Options options = new TextDataset.Options(length, job.settings.batchSize.orElse(8), true, job.settings.seed);
    TextDataset trainData = textData(Gpt2Tokenizer.get().encode(train), options);
    Optional<TextDataset> valData = validation.map(v -> textData(Gpt2Tokenizer.get().encode(v), options.shuffled(false)));
    long totalSteps = (long) job.settings.epochs * trainData.batchesPerEpoch();
    TrainingPlan plan = resume.map(Checkpoint.Info::plan)
        .orElseGet(() -> plan(Optional.empty(), family.groups(), LossSpec.CAUSAL_LM, totalSteps));
    if (plan.loss() != LossSpec.CAUSAL_LM) {
      throw new JobException("a causal language model trains with the causal_lm loss; the plan asks for "
          + plan.loss().kerasName(), Setting.PLAN, "");
    }
    listener.message(String.format(Locale.ROOT, "Model: %s (causal LM, %d transformer layers, %d positions)",
        model.info().dir(), lm.transformerLayers(), lm.positions()));
    listener.message(String.format(Locale.ROOT, "Data: %d documents, %d tokens for training (%d blocks of %d)%s",
        train.documents().size(), trainData.tokens(), trainData.blocks(), length,
        valData.map(v -> String.format(Locale.ROOT, "; %d documents, %d tokens for validation",
            validation.get().documents().size(), v.tokens())).orElse("; no validation")));
    listener.message("Plan: " + new GsonBuilder().disableHtmlEscaping().create().toJson(PlanJson.toJson(plan)));
    try (Trainer trainer = new Trainer(model, plan)) {
      trainer.adapters().ifPresent(a -> listener.message("Adapters: " + a));
      Loop loop = loop(trainer, resume, valData.isPresent() ? "val_loss" : "loss", plan);
      long began = System.nanoTime();
      List<Fit.Epoch> history = loop.fit(Fit.tokens(trainData), valData.map(Fit::tokens));
      double seconds = (System.nanoTime() - began) / 1e9;
      long trained = history.size() * trainData.predictions();
      if (!history.isEmpty()) {
        listener.message(String.format(Locale.ROOT, "Trained on %d tokens in %.1f s (%.0f tokens/s, validation"
            + " included)", trained, seconds, trained / seconds));
      }
      return loop.finish(history, Provenance.Task.causalLm(length, "gpt2 (r50k_base)", text.train()), train.digest());
    }
  }

  private static TextDataset textData(List<int[]> docs, TextDataset.Options options) {
    try {
      return TextDataset.of(docs, Gpt2Tokenizer.END_OF_TEXT, options);
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.DATA, e);
    }
  }

  /** The checkpoint to resume from, refused when it was trained from another model. */
  Optional<Checkpoint.Info> resume() {
    if (job.settings.resume.isEmpty()) {
      return Optional.empty();
    }
    Checkpoint.Info info;
    try {
      info = Checkpoint.read(job.settings.resume.get());
    } catch (IllegalArgumentException e) {
      throw JobException.of(Setting.RESUME, e);
    }
    Path modelDir = model.info().dir();
    if (!DirectoryDigest.of(modelDir).equals(info.modelDigest())) {
      throw new JobException("the checkpoint " + info.dir() + " was trained from another model than " + modelDir,
          Setting.RESUME, "");
    }
    return Optional.of(info);
  }

  Loop loop(Trainer trainer, Optional<Checkpoint.Info> resume, String monitor, TrainingPlan plan) {
    Fit.Start start = Fit.Start.BEGINNING;
    if (resume.isPresent()) {
      start = CheckpointCallback.restore(trainer, resume.get());
      listener.message(String.format(Locale.ROOT, "Resuming from %s at epoch %d, batch %d (%d optimizer steps)",
          resume.get().dir(), start.epoch() + 1, start.batch(), trainer.iterations()));
    }
    List<Fit.Callback> callbacks = new ArrayList<>();
    callbacks.add(new WarningRelay());
    callbacks.add(listener);
    job.settings.earlyStopping.ifPresent(p -> callbacks.add(new EarlyStopping(monitor, p, 0, true)));
    job.settings.reduceLr.ifPresent(p -> callbacks.add(new ReduceLrOnPlateau(monitor, 0.5, p, 1e-7)));
    // The history row before the checkpoint: a kill between them leaves a row the resumed run
    // replaces, never a checkpoint past an epoch the history lacks.
    job.settings.history.ifPresent(csv -> callbacks.add(new CsvLogger(csv, resume.isPresent())));
    Optional<TrainingPosition> position = resume.map(TrainingPosition::of);
    job.settings.checkpoints.ifPresent(dir -> callbacks.add(new CheckpointCallback(dir, monitor, job.settings.checkpointEvery)
        .resuming(position)));
    job.settings.tensorBoard.ifPresent(dir -> callbacks.add(new TensorBoardLogger(dir)));
    job.settings.curves.ifPresent(png -> callbacks.add(new CurvesPlot(png)));
    callbacks.addAll(job.settings.callbacks);
    OptionalInt every = job.settings.unfreezeEvery.isPresent() ? job.settings.unfreezeEvery
        : plan.stages().size() > 1 ? OptionalInt.of(1) : OptionalInt.empty();
    return new Loop(trainer, new Fit.Options(job.settings.epochs, every).withNonFinite(job.settings.onNonFinite), callbacks, start,
        monitor, position.map(TrainingPosition::history).orElse(List.of()));
  }

  /**
   * Passes the trainer's warnings to the listener as they arise: a stage's are made when it is
   * built (before its first epoch), such as trainable variables the loss cannot reach.
   */
  private final class WarningRelay implements Fit.Callback {
    private int told;

    @Override
    public void onEpochBegin(Fit.Control c) {
      Trainer trainer = c.trainer();
      trainer.useStage(trainer.stage());
      List<String> warnings = trainer.warnings();
      warnings.subList(told, warnings.size()).forEach(listener::warning);
      told = warnings.size();
    }
  }

  /** The training loop as the job set it up, and what follows it. */
  final class Loop {
    private final Trainer trainer;
    private final Fit.Options options;
    private final List<Fit.Callback> callbacks;
    private final Fit.Start start;
    private final String monitor;
    private final List<Fit.Epoch> earlier;

    Loop(Trainer trainer, Fit.Options options, List<Fit.Callback> callbacks, Fit.Start start, String monitor,
        List<Fit.Epoch> earlier) {
      this.trainer = trainer;
      this.options = options;
      this.callbacks = callbacks;
      this.start = start;
      this.monitor = monitor;
      this.earlier = earlier;
    }

    List<Fit.Epoch> fit(Fit.BatchSource train, Optional<? extends Fit.BatchSource> validation) {
      return Fit.run(trainer, train, validation.map(v -> (Fit.BatchSource) v), options, callbacks, start);
    }

    /** The best epoch, and the export with its provenance. */
    FineTuneResult finish(List<Fit.Epoch> history, Provenance.Task task, String dataDigest) {
      OptionalInt bestEpoch = OptionalInt.empty();
      double best = Double.NaN;
      for (Fit.Epoch e : history) {
        Double v = e.logs().get(monitor);
        if (v != null && EarlyStopping.improved(monitor, v, best, 0)) {
          best = v;
          bestEpoch = OptionalInt.of(e.epoch());
        }
      }
      boolean stoppedEarly = job.settings.earlyStopping.isPresent() && history.size() < job.settings.epochs - start.epoch();
      Optional<ExportResult> export = job.settings.exportTo.map(out -> {
        Fit.Epoch last = history.isEmpty() ? null : history.get(history.size() - 1);
        ExportOptions eo = ExportOptions.defaults().overwriting(job.settings.overwrite)
            .trainingRecord(start.epoch() + history.size(), last == null ? java.util.Map.of() : last.logs(),
                Optional.of(dataDigest)).withExtra(task.toJson());
        try {
          return Exporter.export(trainer, out, eo);
        } catch (IllegalArgumentException e) {
          throw JobException.of(Setting.EXPORT, e);
        }
      });
      job.settings.adaptersTo.ifPresent(dir -> listener.message("Adapters written apart to " + Exporter.exportAdapters(
          trainer, dir, ExportOptions.defaults().overwriting(job.settings.overwrite))));
      return new FineTuneResult(history, earlier, start.epoch(), job.settings.epochs, monitor, bestEpoch,
          bestEpoch.isPresent() ? OptionalDouble.of(best) : OptionalDouble.empty(), stoppedEarly, trainer.plan(),
          export);
    }
  }
}
